// Checks an ONNX export of Depth Anything V2 against the official code's
// reference depth: runs REFDIR/preprocessed.npy through ONNX Runtime and prints
// the max and mean absolute error against REFDIR/depth_net.npy (metres).
//
//   node validate_da2.js MODEL.onnx [REFDIR]   (default ../../../shared/reference/da2/vits)
const ort = require('onnxruntime-node');
const fs = require('fs');
const path = require('path');

function npy(file) {
  // little-endian float32, C order
  const b = fs.readFileSync(file);
  const hl = b.readUInt16LE(8),
    h = b.slice(10, 10 + hl).toString();
  if (!h.includes("'<f4'")) throw new Error(`${file}: not little-endian float32`);
  const shape = h
    .match(/\((.*?)\)/)[1]
    .split(',')
    .filter((s) => s.trim())
    .map(Number);
  const d = b.slice(10 + hl);
  return { shape, data: new Float32Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.length)) };
}

(async () => {
  const model = process.argv[2];
  const ref = process.argv[3] || path.join(__dirname, '../../../shared/reference/da2/vits');
  if (!model) {
    console.error('usage: node validate_da2.js MODEL.onnx [REFDIR]');
    process.exit(2);
  }
  const s = await ort.InferenceSession.create(model, { logSeverityLevel: 3 });
  const x = npy(path.join(ref, 'preprocessed.npy')),
    want = npy(path.join(ref, 'depth_net.npy'));
  const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x.data, [1, ...x.shape]) });
  const y = r[s.outputNames[0]].data;
  if (y.length !== want.data.length)
    throw new Error(`output has ${y.length} values, reference ${want.data.length}`);
  let max = 0,
    sum = 0;
  for (let i = 0; i < y.length; i++) {
    const e = Math.abs(y[i] - want.data[i]);
    max = Math.max(max, e);
    sum += e;
  }
  console.log(
    `${y.length} values: max abs error ${max.toExponential(3)} m, mean ${(sum / y.length).toExponential(3)} m`,
  );
})();
