// The gateway check's upstream: a plain HTTP server on a free loopback port that answers every
// request with what it received, as JSON, so that the check can see what tokengate forwarded.
//
//   node interop/upstream.mjs
//
// Prints `upstream listening on http://127.0.0.1:PORT` on stdout once it accepts connections.
// Every request is answered 200 with {"seen", "method", "url", "headers", "rawHeaders",
// "body"}: `seen` counts the requests so far (this one included), `headers` is Node's parsed
// view (a repeated header comes out joined with ", "), `rawHeaders` the name/value pairs as
// they arrived. `GET /_interop/count` (not counted) answers {"seen"}, so the check can tell
// that a refused request never got here. Runs until killed.

import http from 'node:http';

let seen = 0;

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let answer;
    if (req.method === 'GET' && req.url === '/_interop/count') {
      answer = { seen };
    } else {
      seen += 1;
      answer = {
        seen,
        method: req.method,
        url: req.url,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString('utf8'),
      };
    }
    const body = JSON.stringify(answer);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`upstream listening on http://127.0.0.1:${server.address().port}`);
});
