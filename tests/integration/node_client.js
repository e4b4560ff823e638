// node_client.js — cairn-server driven by node-redis 4 (Debian's
// node-redis), the Node.js client: run by server_node.py with the port of
// a running cairn-server. Exit status 0 when every check passed; a failed
// check throws (non-zero exit, the message on stderr).
'use strict';
const assert = require('assert');
const { createClient, commandOptions, WatchError } = require('redis');

async function main() {
  const port = Number(process.argv[2]);
  const url = `redis://127.0.0.1:${port}`;
  const c = createClient({ url });
  const o = createClient({ url });
  c.on('error', (e) => { throw e; });
  o.on('error', (e) => { throw e; });
  await c.connect();
  await o.connect();

  assert.strictEqual(await c.ping(), 'PONG');
  assert.strictEqual(await c.set('nd:a', 'hello'), 'OK');
  assert.strictEqual(await c.get('nd:a'), 'hello');
  assert.strictEqual(await c.get('nd:missing'), null);
  assert.strictEqual(await c.incrBy('nd:n', 41), 41);
  assert.strictEqual(await c.incr('nd:n'), 42);
  assert.deepStrictEqual(await c.mGet(['nd:a', 'nd:missing', 'nd:n']),
                         ['hello', null, '42']);

  // Binary values, as Buffers both ways.
  const bin = Buffer.from([0, 1, 2, 13, 10, 255, 0, 128]);
  await c.set('nd:bin', bin);
  const back = await c.get(commandOptions({ returnBuffers: true }), 'nd:bin');
  assert.ok(Buffer.isBuffer(back) && back.equals(bin), back);

  // Errors come back as rejections with Redis's text.
  await assert.rejects(c.incr('nd:a'),
                       { message: 'ERR value is not an integer or out of range' });
  await assert.rejects(c.sendCommand(['NOSUCHCMD', 'x']),
                       (e) => e.message.startsWith("ERR unknown command 'NOSUCHCMD'"));

  // Expiry.
  await c.set('nd:e', 'v', { EX: 100 });
  const ttl = await c.ttl('nd:e');
  assert.ok(ttl > 90 && ttl <= 100, ttl);

  // 5,000 commands issued at once: node-redis pipelines them.
  const N = 5000;
  const sets = [];
  for (let i = 0; i < N; i++) sets.push(c.set(`nd:p:${i}`, String(i * 7)));
  assert.ok((await Promise.all(sets)).every((r) => r === 'OK'));
  const gets = [];
  for (let i = 0; i < N; i++) gets.push(c.get(`nd:p:${i}`));
  (await Promise.all(gets)).forEach((v, i) => assert.strictEqual(v, String(i * 7)));

  // SCAN through scanIterator: every key of the prefix exactly once.
  const seen = new Set();
  for await (const k of c.scanIterator({ MATCH: 'nd:p:*', COUNT: 100 })) {
    seen.add(k);
  }
  assert.strictEqual(seen.size, N);

  // MULTI/EXEC, with a CLIENT command queued among the key commands.
  const res = await c.multi()
    .set('nd:t', '1')
    .incr('nd:t')
    .clientSetName('node-tx')
    .get('nd:t')
    .exec();
  assert.deepStrictEqual(res, ['OK', 2, 'OK', '2']);
  assert.strictEqual(await c.clientGetName(), 'node-tx');

  // WATCH: another connection's write aborts the transaction.
  await c.executeIsolated(async (iso) => {
    await iso.watch('nd:t');
    await o.set('nd:t', 'theirs');
    await assert.rejects(iso.multi().set('nd:t', 'mine').exec(),
                         (e) => e instanceof WatchError);
  });
  assert.strictEqual(await c.get('nd:t'), 'theirs');

  // Time travel: the value as of an earlier commit's version.
  await c.set('nd:h', 'old');
  const v = await c.sendCommand(['CAIRN.VERSION']);
  await c.set('nd:h', 'new');
  assert.strictEqual(await c.sendCommand(['CAIRN.GETAT', 'nd:h', 'VERSION',
                                          String(v)]), 'old');

  assert.strictEqual(await c.del(['nd:a', 'nd:n', 'nd:bin', 'nd:missing']), 3);
  await o.quit();
  await c.quit();
  console.log('node-redis: all checks passed');
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
