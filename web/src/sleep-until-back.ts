/**
 * Waits between reconnection attempts, but wakes at once when the browser comes back online or the
 * tab becomes visible again: the reader is back, so the answer should be too.
 */
export function sleepUntilBack(milliseconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      document.removeEventListener('visibilitychange', onVisible);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const onVisible = () => {
      if (document.visibilityState === 'visible') done();
    };
    const timer = setTimeout(done, milliseconds);
    window.addEventListener('online', done);
    document.addEventListener('visibilitychange', onVisible);
    signal?.addEventListener('abort', done);
  });
}
