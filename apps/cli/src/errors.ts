/**
 * User-facing errors.
 *
 * A `CliError` is a problem with what the user asked for (a bad flag value, a missing checkpoint, an
 * unreadable image): main.ts prints its message as ONE line, `mofme: error: <message>`, and exits
 * with its code, without a stack trace (set MOFME_DEBUG=1 to see stacks). Any other exception is a
 * bug or an unexpected environment problem; it is printed the same way, since a stack trace helps
 * nobody who did not write the code, but MOFME_DEBUG=1 shows it.
 */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CliError';
  }
}

/** The first line of an error's message, prefixed by nothing: what the user sees. */
export function oneLine(error: unknown): string {
  const msg = error instanceof Error ? error.message : String(error);
  return msg.split('\n').map((s) => s.trim()).filter(Boolean).join(' ').replace(/\s+/g, ' ');
}
