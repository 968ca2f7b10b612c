/**
 * One timer for the earliest of many deadlines (the requests in flight on a channel, the idle
 * connections of a pool): a timer per item cost an allocation and two timer-list updates per call.
 * `due` runs once the armed deadline has passed; it finds what is due and arms the next deadline.
 */
export class EarliestDeadline {
  private timer?: NodeJS.Timeout;
  private at = Infinity;

  /**
   * @param clock the time deadlines are given in (ms)
   * @param keepsAlive whether an armed timer keeps the process alive
   */
  constructor(private readonly due: () => void, private readonly clock: () => number, private readonly keepsAlive: boolean) {}

  /** Fires at `at`, unless already armed for an earlier time. */
  arm(at: number): void {
    if (at >= this.at) return;
    clearTimeout(this.timer);
    this.at = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.at = Infinity;
      this.due();
    }, Math.max(1, Math.ceil(at - this.clock())));
    if (!this.keepsAlive) this.timer.unref();
  }

  /** Nothing left to wait for. */
  disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.at = Infinity;
  }
}
