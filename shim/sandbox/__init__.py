"""One guest run under limits and grants: the engine, the policy's enforcement, usage, the audit log."""
