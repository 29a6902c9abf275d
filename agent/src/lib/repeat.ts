// A measurement taken every `everyMs`: never two at once (a slow one skips a turn), on a timer that
// does not keep the process alive, and a failing one is a missed sample, not a crash.
export function repeat(task: () => Promise<void>, everyMs: number, o: { now?: boolean } = {}): () => void {
  let running = false;
  const run = async () => {
    if (running) return;
    running = true;
    try {
      await task();
    } catch {
      // The next turn tries again.
    } finally {
      running = false;
    }
  };
  if (o.now) void run();
  const timer = setInterval(() => void run(), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
