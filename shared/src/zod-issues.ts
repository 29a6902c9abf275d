import type { z } from "zod";

export interface FieldIssue {
  path: string;
  message: string;
}

/** `uplinks[1].priority` style paths: what a user can find in their own file. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || "(root)";
}

export function fieldIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((i) => {
    // zod reports an unknown key at the parent: name the key itself.
    if (i.code === "unrecognized_keys")
      return {
        path: formatPath([...i.path, i.keys[0] ?? ""]),
        message: `unknown field${i.keys.length > 1 ? "s" : ""} ${i.keys.map((k) => `"${k}"`).join(", ")}`,
      };
    return { path: formatPath(i.path), message: i.message };
  });
}

/** One readable line per problem. */
export function issueLines(error: z.ZodError): string[] {
  return fieldIssues(error).map((i) => `${i.path}: ${i.message}`);
}
