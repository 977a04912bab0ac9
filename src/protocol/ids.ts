// Plain values of the protocol, without zod: the terminal client runs on Node's built-ins alone, and the
// page's bundle stays small.

/** The pattern of client-chosen ids (`context_id`, `turn_id`, `client_message_id`). */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
