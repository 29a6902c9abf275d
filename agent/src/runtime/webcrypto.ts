// Node 18 has WebCrypto only as require("node:crypto").webcrypto, not as the global `crypto` that
// the shared signing code (also run by workerd) uses: provide the global where it is missing.
import { webcrypto } from "node:crypto";

if (globalThis.crypto === undefined)
  Object.defineProperty(globalThis, "crypto", { value: webcrypto, configurable: true, writable: true });
