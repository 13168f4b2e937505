/**
 * CLI failures carry their exit code: 1 for runtime problems (the account
 * exists, no such account), 2 for usage and configuration mistakes.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: 1 | 2 | 130,
  ) {
    super(message);
  }
}

export const usageError = (message: string): CliError => new CliError(message, 2);
export const runtimeError = (message: string): CliError => new CliError(message, 1);
