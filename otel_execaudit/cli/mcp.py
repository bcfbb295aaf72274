"""``execaudit mcp``: the read-only MCP server over stdio (otel_execaudit.inspection.mcp_server)."""
