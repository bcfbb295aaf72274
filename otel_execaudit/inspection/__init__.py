"""Inspection, for people and agents: what happened, read from the ledger (queries, rollback
guidance, the last error, reports, an MCP server). Nothing here yet; nothing here ever acts."""
