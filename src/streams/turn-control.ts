/** What a turn's log held when it was sealed by another than its producer: the answer its tokens make. */
export interface SealedAnswer {
  answer: string;
  tokenCount: number;
  /** The data of the log's final entry when it had ended before this seal (this seal then wrote none). */
  endedWith?: string | undefined;
}

/**
 * How instances tell each other about turns (scale-out.md §6.13–14): a cancel asked on one instance
 * reaches the instance generating the turn, and a turn whose producer died gets its log ended by
 * another. Without a shared log there is one process: a cancel is a local abort, and nothing needs
 * sealing (`localTurnControl`).
 */
export interface TurnControl {
  /** Whether other instances may run turns (a cancel of a turn not running here must be passed on). */
  readonly shared: boolean;
  /** Follows a turn this process generates: `stop` is called (once) when another instance asks to cancel it. Returns how to stop following. */
  watch(turnId: string, stop: () => void): () => void;
  /** Asks the instance generating a turn to cancel it: a durable flag it polls, and a message that makes it act at once. */
  requestCancel(turnId: string): Promise<void>;
  /**
   * Ends the log of a turn whose producer is gone with the final entry `finalData` builds from the
   * answer the log holds (unless the log has ended already), fencing the producer out of it; the answer
   * the log holds, or undefined when there is no log.
   */
  seal(turnId: string, finalData: (sealed: SealedAnswer) => string): Promise<SealedAnswer | undefined>;
  close(): Promise<void>;
}

/** The control of a single process: cancels are local aborts, so there is nothing to pass on or seal. */
export const localTurnControl: TurnControl = {
  shared: false,
  watch: () => () => {},
  requestCancel: () => Promise.resolve(),
  seal: () => Promise.resolve(undefined),
  close: () => Promise.resolve(),
};
