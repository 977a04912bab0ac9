import { MemoryReplayLog } from '../src/streams/memory-replay-log.js';
import { replayLogContract } from './support/replay-log-contract.js';

replayLogContract('memory', () => new MemoryReplayLog(), { createTight: () => new MemoryReplayLog({ maxBytes: 20_000 }) });
replayLogContract('memory (byte budget)', () => new MemoryReplayLog({ maxBytes: 64 * 1_048_576 }));
