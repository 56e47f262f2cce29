/**
 * One problem `check` reports, in e2fsck's terms. Its own module so that check.ts and the
 * check-*.ts passes it runs both import it without importing each other.
 */
import type { ErrorCode } from '../errors.js';

export interface CheckProblem {
  /** e2fsck pass the problem belongs to (0: superblock, journal, resize inode). */
  pass: 0 | 1 | 2 | 3 | 4 | 5;
  code: ErrorCode | string;
  structure: string;
  location: string;
  message: string;
}
