/**
 * Offline message storage (XEP-0160): messages for an account that had no
 * resource to take them, kept until one of its resources sends initial
 * presence, then delivered once and deleted.
 */

export interface OfflineMessage {
  /** Storage order (ascending = arrival order). */
  seq: number;
  /** When the server stored it (ms since the epoch), for the XEP-0203 delay stamp. */
  stamp: number;
  /** The message as it would have been delivered (XML, with its <stanza-id/> when archived). */
  stanza: string;
  /** The recipient's archive id of this message, when it is in the archive. */
  archiveId: string | undefined;
}

export interface OfflineStore {
  /**
   * Store one message unless the account already holds `limit` of them.
   * Returns false when the limit was reached (nothing stored).
   */
  store(username: string, msg: Omit<OfflineMessage, 'seq'>, limit: number): Promise<boolean>;
  count(username: string): Promise<number>;
  /** The stored messages of the account, oldest first, without removing them (`verona export`). */
  peek(username: string): Promise<OfflineMessage[]>;
  /** Remove and return every stored message of the account, oldest first (one transaction). */
  take(username: string): Promise<OfflineMessage[]>;
  /** Remove the stored messages that are also in the archive; returns how many. */
  dropArchived(username: string): Promise<number>;
}
