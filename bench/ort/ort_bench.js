// ONNX Runtime's side of the speed comparisons in the README: the median and
// best wall time of session.run on one input filled with 0.5, after 3 warm-up
// runs, with the given number of intra-op threads.
//
//   node ort_bench.js MODEL.onnx RUNS THREADS [HxW]     (HxW default 224x224)
//
// e.g. node ort_bench.js ../../models/fastdepth_7.onnx 300 2
//      node ort_bench.js da2_vits_518x686.onnx 5 2 518x686
const ort = require('onnxruntime-node');

(async () => {
  const [model, runsArg, threadsArg, hw] = process.argv.slice(2);
  if (!model) {
    console.error('usage: node ort_bench.js MODEL.onnx RUNS THREADS [HxW]');
    process.exit(2);
  }
  const runs = +runsArg || 50,
    threads = +threadsArg || 1;
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  });
  const [h, w] = hw ? hw.split('x').map(Number) : [224, 224];
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', new Float32Array(3 * h * w).fill(0.5), [
    1,
    3,
    h,
    w,
  ]);
  for (let i = 0; i < 3; i++) await session.run(feeds);
  const t = [];
  for (let i = 0; i < runs; i++) {
    const a = process.hrtime.bigint();
    await session.run(feeds);
    t.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  t.sort((a, b) => a - b);
  console.log(
    `median ${t[runs >> 1].toFixed(3)} ms best ${t[0].toFixed(3)} ms ` +
      `threads ${threads} runs ${runs}`,
  );
})();
