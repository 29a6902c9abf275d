// One real alarm serving every room's deadlines: armed at the earliest, never moved later.

export class AlarmClock {
  /** The alarm as armed, kept here so scheduling costs no storage read. */
  private at: number | null = null;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly usage: { alarmsSet: number },
  ) {}

  async load(): Promise<void> {
    this.at = await this.storage.getAlarm();
  }

  /** The alarm is running: nothing is armed until the next `arm`. */
  fired(): void {
    this.at = null;
  }

  /** Arms the alarm at the earliest deadline, unless one at least as early is set: each move is a billed write. */
  async arm(deadlines: readonly (number | null)[], now: number): Promise<void> {
    const due = deadlines.filter((t): t is number => t !== null);
    if (!due.length) return;
    const next = Math.max(Math.min(...due), now + 1);
    if (this.at !== null && this.at <= next) return;
    this.at = next;
    this.usage.alarmsSet++;
    await this.storage.setAlarm(next);
  }
}
