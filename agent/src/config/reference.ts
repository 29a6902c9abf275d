// Where the agent config is documented: named by errors, fixes, the YAML and the unit `install` writes.
export const CONFIG_REFERENCE = "docs/agent.md in the wanwatch repository";
export const SEE_REFERENCE = `see ${CONFIG_REFERENCE} for every field of the agent config`;
