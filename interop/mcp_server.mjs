// The MCP check's MCP server: the official TypeScript SDK's McpServer over streamable HTTP
// (stateless), with one tool, `whoami`, which answers with the user the gateway forwarded in
// `x-user-id` (tokengate's `forward_claims`). It checks no token itself: it sits behind a
// tokengate MCP route, which does.
//
//   node interop/mcp_server.mjs
//
// Listens on a free loopback port and prints `mcp-server listening on http://127.0.0.1:PORT`
// once it accepts connections; serves POST /mcp. Runs until killed.

import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

function server() {
  const mcp = new McpServer({ name: 'tokengate-interop', version: '1.0.0' });
  mcp.registerTool('whoami', { description: 'Who the gateway says the caller is' }, async (extra) => {
    const user = extra?.requestInfo?.headers?.['x-user-id'] ?? '(nobody)';
    return { content: [{ type: 'text', text: `hello ${user}` }] };
  });
  return mcp;
}

const httpServer = http.createServer(async (req, res) => {
  if (req.url !== '/mcp') {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  const body = text ? JSON.parse(text) : undefined;
  // Stateless: a server and a transport per request.
  const mcp = server();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on('close', () => {
    transport.close();
    mcp.close();
  });
  await mcp.connect(transport);
  await transport.handleRequest(req, res, body);
});
await new Promise((resolve, reject) => {
  httpServer.once('error', reject);
  httpServer.listen(0, '127.0.0.1', resolve);
});
console.log(`mcp-server listening on http://127.0.0.1:${httpServer.address().port}`);
