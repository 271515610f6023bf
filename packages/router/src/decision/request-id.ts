/** A client's own X-Request-Id is kept when it is sane: short, and only token characters. */
export const SANE_REQUEST_ID = /^[A-Za-z0-9._:@+=\/-]{1,128}$/;
