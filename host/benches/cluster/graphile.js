// graphile-worker, the peer of the cluster bench: N no-op jobs, each added
// by its own add_job call (unbatched), `clients` of them at a time, run by
// one worker process with `concurrency` at once; prints the jobs/s from
// the first add to the last job done as `JOBS_PER_S <n>`.
// Usage: node graphile.js <postgres url> <jobs> <clients> <concurrency>
const { run, makeWorkerUtils } = require("graphile-worker");

async function main() {
  const [url, jobsArg, clientsArg, concArg] = process.argv.slice(2);
  const jobs = Number(jobsArg);
  const clients = Number(clientsArg);
  const concurrency = Number(concArg);
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  let done = 0;
  let finished;
  const allDone = new Promise((r) => (finished = r));
  const runner = await run({
    connectionString: url,
    concurrency,
    noHandleSignals: true,
    pollInterval: 1000,
    taskList: {
      noop: async () => {
        done += 1;
        if (done === jobs) finished();
      },
    },
  });
  const t0 = process.hrtime.bigint();
  let next = 0;
  async function client() {
    while (next < jobs) {
      next += 1;
      await utils.addJob("noop", { n: next });
    }
  }
  await Promise.all(Array.from({ length: clients }, client));
  await allDone;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`JOBS_PER_S ${(jobs / secs).toFixed(1)}`);
  await runner.stop();
  await utils.release();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
