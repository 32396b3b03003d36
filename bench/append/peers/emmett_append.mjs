// Append throughput of Emmett's PostgreSQL event store (@event-driven-io/emmett-postgresql),
// the Node peer that bench/append measures beside Ordo on the same cluster in the same run.
// N concurrent writers (async loops over one pool of N connections), each over its own 100
// streams with exact expected versions, append single events or batches for the given
// seconds, with the payload and metadata of the other columns; prints `events/s = <rate>`.
//
//   node emmett_append.mjs <database URL> <writers> <events per append> <seconds> <round>
//
// The URL carries no password: it comes from PGPASSFILE, as for libpq.
// bench/append/peers/install.sh copies this file beside the installed packages, so that the
// imports below resolve there.
import pg from 'pg';
import { parse } from 'pg-connection-string';
import pgpass from 'pgpass';
import { getPostgreSQLEventStore } from '@event-driven-io/emmett-postgresql';
import { STREAM_DOES_NOT_EXIST } from '@event-driven-io/emmett';

// The arguments as numbers, or an exit with a usage line when they are not.
function parseArgs(argv) {
  const [url, writers, batch, seconds, round] = argv;
  const [w, b, s, r] = [writers, batch, seconds, round].map(Number);
  const whole = (n, min) => Number.isInteger(n) && n >= min;
  if (!url || !whole(w, 1) || !whole(b, 1) || !whole(s, 1) || !whole(r, 0)) {
    console.error(
      'usage: emmett_append.mjs <database URL> <writers >= 1> <events per append >= 1> ' +
        '<seconds >= 1> <round >= 0>',
    );
    process.exit(2);
  }
  return { url, writers: w, batch: b, seconds: s, round: r };
}

// The pool's settings: those of `url`, parsed as node-postgres parses them, with the
// password looked up in PGPASSFILE (the pgpass module) when a connection opens, since the
// built-in lookup of node-postgres is deprecated. (Given a connectionString, node-postgres
// would let the URL's missing password override the lookup.)
function poolSettings(url, max) {
  const password = (p) =>
    new Promise((resolve) =>
      pgpass({ host: p.host, port: p.port, user: p.user, database: p.database }, resolve),
    );
  return { ...parse(url), password, max };
}

// One event of the benchmark's shape: the payload and metadata the other columns write.
function newEvent() {
  return {
    type: 'StockReceived',
    data: { sku: 'sku-1', quantity: 1 },
    metadata: {
      trace_id: '0af7651916cd43dd8448eb211c80319c',
      span_id: 'b7ad6b7169203331',
      correlation_id: 'c',
      causation_id: 'c',
      command_id: 'cmd',
      actor: 'bench',
    },
  };
}

// One writer: appends to its 100 streams in turn until `stopAt`, each append with the exact
// version the stream is at; returns the number of events it appended.
async function writer(store, w, args, stopAt) {
  const versions = new Array(100).fill(null);
  let events = 0;
  for (let i = 0; Date.now() < stopAt; ++i) {
    const k = i % 100;
    const batch = Array.from({ length: args.batch }, newEvent);
    const result = await store.appendToStream(`bench-r${args.round}w${w}s${k}`, batch, {
      expectedStreamVersion: versions[k] ?? STREAM_DOES_NOT_EXIST,
    });
    versions[k] = result.nextExpectedStreamVersion;
    events += args.batch;
  }
  return events;
}

// Creates Emmett's schema, opens the pool's connections, then runs the writers and prints
// the rate.
async function main() {
  const args = parseArgs(process.argv.slice(2));
  const pool = new pg.Pool(poolSettings(args.url, args.writers));
  const store = getPostgreSQLEventStore(args.url, { connectionOptions: { pool } });
  try {
    await store.schema.migrate();
    // Every connection open before the clock starts, as pgbench and Ordo's pool have theirs.
    const clients = await Promise.all(Array.from({ length: args.writers }, () => pool.connect()));
    clients.forEach((c) => c.release());

    const started = performance.now();
    const stopAt = Date.now() + args.seconds * 1000;
    const counts = await Promise.all(
      Array.from({ length: args.writers }, (_, w) => writer(store, w, args, stopAt)),
    );
    const elapsed = (performance.now() - started) / 1000;
    const events = counts.reduce((a, b) => a + b, 0);
    console.log(`events/s = ${(events / elapsed).toFixed(1)}`);
  } finally {
    await store.close();
    await pool.end();
  }
}

main().catch((e) => {
  console.error(`emmett_append: ${e?.stack ?? e}`);
  process.exit(1);
});
