// Depth Anything V2 (metric head) as an ONNX graph at a fixed input size, from an
// official state dict in safetensors (F16 or F32), laid out as torch.onnx.export at
// opset 17 would (MatMul + Add linears, attention from MatMul/Softmax, GELU from Erf,
// refinenets that upsample before their 1x1 out_conv as in PyTorch). The protobuf is
// written by hand from onnx.proto's field numbers: no dependency. ONNX Runtime's side
// of the README's Depth Anything V2 comparisons; validate_da2.js checks the result
// against the reference depth.
//
//   node make_da2_onnx.js MODEL.safetensors OUT.onnx [H W] [MAX_DEPTH]   (518 686 20)
const fs = require('fs');
const [src, out] = process.argv.slice(2, 4);
if (!src || !out) {
  console.error('usage: node make_da2_onnx.js MODEL.safetensors OUT.onnx [H W] [MAX_DEPTH]');
  process.exit(2);
}
const H = +(process.argv[4] || 518),
  W = +(process.argv[5] || 686);
const MAXD = +(process.argv[6] || 20);
// ---- safetensors
const buf = fs.readFileSync(src);
const hlen = Number(buf.readBigUInt64LE(0));
const hdr = JSON.parse(buf.slice(8, 8 + hlen).toString());
const base = 8 + hlen;
function f16(h) {
  const s = h >> 15,
    e = (h >> 10) & 31,
    m = h & 1023;
  let v;
  if (e === 0) v = m * 2 ** -24;
  else if (e === 31) v = m ? NaN : Infinity;
  else v = (1 + m / 1024) * 2 ** (e - 15);
  return s ? -v : v;
}
function T(name) {
  const t = hdr[name];
  if (!t) throw new Error('missing ' + name);
  const a = t.data_offsets[0],
    n = t.shape.reduce((x, y) => x * y, 1),
    r = new Float32Array(n);
  if (t.dtype === 'F16') for (let i = 0; i < n; i++) r[i] = f16(buf.readUInt16LE(base + a + 2 * i));
  else if (t.dtype === 'F32') for (let i = 0; i < n; i++) r[i] = buf.readFloatLE(base + a + 4 * i);
  else throw new Error(t.dtype);
  return { data: r, shape: t.shape };
}
// ---- protobuf
function varint(n) {
  n = BigInt(n);
  if (n < 0n) n += 1n << 64n;
  const b = [];
  do {
    let x = Number(n & 127n);
    n >>= 7n;
    if (n) x |= 128;
    b.push(x);
  } while (n);
  return Buffer.from(b);
}
const key = (f, w) => varint(f * 8 + w);
const fInt = (f, v) => Buffer.concat([key(f, 0), varint(v)]);
const fBytes = (f, b) => {
  if (typeof b === 'string') b = Buffer.from(b);
  return Buffer.concat([key(f, 2), varint(b.length), b]);
};
const fFloat = (f, v) => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return Buffer.concat([key(f, 5), b]);
};
// TensorProto: dims 1, data_type 2, name 8, raw_data 9
function tensor(name, dims, arr, dtype = 1) {
  const raw =
    dtype === 7
      ? Buffer.from(new BigInt64Array(arr.map(BigInt)).buffer)
      : Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
  return Buffer.concat([
    ...dims.map((d) => fInt(1, d)),
    fInt(2, dtype),
    fBytes(8, name),
    fBytes(9, raw),
  ]);
}
// AttributeProto: name 1, f 2, i 3, s 4, ints 8, type 20 (FLOAT 1, INT 2, STRING 3,
// INTS 7). Values: a string, an array of ints, an int, or {f: a float}.
function attr(name, v) {
  const n = fBytes(1, name);
  if (typeof v === 'string') return Buffer.concat([n, fBytes(4, v), fInt(20, 3)]);
  if (Array.isArray(v)) return Buffer.concat([n, ...v.map((x) => fInt(8, x)), fInt(20, 7)]);
  if (typeof v === 'object') return Buffer.concat([n, fFloat(2, v.f), fInt(20, 1)]);
  return Buffer.concat([n, fInt(3, v), fInt(20, 2)]);
}
const nodes = [],
  inits = [];
let uid = 0;
const nm = (p) => `${p}_${uid++}`;
function node(op, ins, attrs = {}, nout = 1) {
  const outs = Array.from({ length: nout }, () => nm(op));
  const parts = [
    ...ins.map((i) => fBytes(1, i)),
    ...outs.map((o) => fBytes(2, o)),
    fBytes(3, nm('n')),
    fBytes(4, op),
  ];
  for (const [k, v] of Object.entries(attrs)) parts.push(fBytes(5, attr(k, v)));
  nodes.push(Buffer.concat(parts));
  return nout === 1 ? outs[0] : outs;
}
function init(dims, arr, dtype = 1) {
  const n = nm('w');
  inits.push(tensor(n, dims, arr, dtype));
  return n;
}
const i64 = (v) => init([v.length], v, 7);
const scalarF = (v) => init([], new Float32Array([v]));
const W_ = (name) => {
  const t = T(name);
  return init(t.shape, t.data);
};
// ---- encoder
const ph = Math.floor(H / 14),
  pw = Math.floor(W / 14),
  np_ = ph * pw,
  C = 384,
  HEADS = 6,
  D = 64;
let x = node(
  'Conv',
  ['input', W_('pretrained.patch_embed.proj.weight'), W_('pretrained.patch_embed.proj.bias')],
  { kernel_shape: [14, 14], strides: [14, 14] },
);
x = node('Reshape', [x, i64([1, C, np_])]);
x = node('Transpose', [x], { perm: [0, 2, 1] });
x = node('Concat', [W_('pretrained.cls_token'), x], { axis: 1 });
// position embedding: DINOv2's bicubic (A = -0.75, align_corners False, scale_factor with +0.1)
{
  const pe = T('pretrained.pos_embed').data,
    G = Math.round(Math.sqrt(pe.length / C - 1));
  const pos = new Float32Array((np_ + 1) * C);
  for (let c = 0; c < C; c++) pos[c] = pe[c];
  const cub = (t) => {
    const A = -0.75;
    const x1 = t + 1,
      x2 = t,
      x3 = 1 - t,
      x4 = 2 - t;
    const f1 = (z) => ((A + 2) * z - (A + 3)) * z * z + 1,
      f2 = (z) => ((A * z - 5 * A) * z + 8 * A) * z - 4 * A;
    return [f2(x1), f1(x2), f1(x3), f2(x4)];
  };
  const taps = (d, step, size) => {
    const f = Math.fround(step * (d + 0.5) - 0.5),
      fl = Math.floor(f);
    const w = cub(f - fl);
    return [[0, 1, 2, 3].map((k) => Math.min(Math.max(fl - 1 + k, 0), size - 1)), w];
  };
  const sy = Math.fround(1 / ((ph + 0.1) / G)),
    sx = Math.fround(1 / ((pw + 0.1) / G));
  for (let y = 0; y < ph; y++) {
    const [iy, wy] = taps(y, sy, G);
    for (let xx = 0; xx < pw; xx++) {
      const [ix, wx] = taps(xx, sx, G);
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let a = 0; a < 4; a++) {
          let r = 0;
          for (let b = 0; b < 4; b++) r += pe[(1 + iy[a] * G + ix[b]) * C + c] * wx[b];
          s += r * wy[a];
        }
        pos[(1 + y * pw + xx) * C + c] = s;
      }
    }
  }
  x = node('Add', [x, init([1, np_ + 1, C], pos)]);
}
const LN = (x, p, eps = 1e-6) =>
  node('LayerNormalization', [x, W_(p + '.weight'), W_(p + '.bias')], {
    axis: -1,
    epsilon: { f: eps },
  });
const lin = (x, p) => {
  const t = T(p + '.weight'),
    [o, i] = t.shape,
    wt = new Float32Array(o * i);
  for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) wt[c * o + r] = t.data[r * i + c];
  return node('Add', [node('MatMul', [x, init([i, o], wt)]), W_(p + '.bias')]);
};
const feats = [];
const sq2 = scalarF(Math.SQRT2),
  one = scalarF(1),
  half = scalarF(0.5),
  qs = scalarF(1 / Math.sqrt(D));
for (let b = 0; b < 12; b++) {
  const p = `pretrained.blocks.${b}`;
  let h = LN(x, p + '.norm1');
  let qkv = node('Reshape', [lin(h, p + '.attn.qkv'), i64([1, np_ + 1, 3, HEADS, D])]);
  qkv = node('Transpose', [qkv], { perm: [2, 0, 3, 1, 4] });
  const [q, k, v] = [0, 1, 2].map((i) => node('Gather', [qkv, init([], [i], 7)], { axis: 0 }));
  let s = node('MatMul', [node('Mul', [q, qs]), node('Transpose', [k], { perm: [0, 1, 3, 2] })]);
  let o = node('MatMul', [node('Softmax', [s], { axis: -1 }), v]);
  o = node('Reshape', [node('Transpose', [o], { perm: [0, 2, 1, 3] }), i64([1, np_ + 1, C])]);
  x = node('Add', [x, node('Mul', [lin(o, p + '.attn.proj'), W_(p + '.ls1.gamma')])]);
  h = lin(LN(x, p + '.norm2'), p + '.mlp.fc1');
  h = node('Mul', [
    node('Mul', [h, node('Add', [node('Erf', [node('Div', [h, sq2])]), one])]),
    half,
  ]);
  x = node('Add', [x, node('Mul', [lin(h, p + '.mlp.fc2'), W_(p + '.ls2.gamma')])]);
  if ([2, 5, 8, 11].includes(b)) {
    let f = node('Slice', [LN(x, 'pretrained.norm'), i64([1]), i64([np_ + 1]), i64([1])]);
    feats.push(node('Reshape', [node('Transpose', [f], { perm: [0, 2, 1] }), i64([1, C, ph, pw])]));
  }
}
// ---- DPT head
const conv = (x, p, k, opt = {}) =>
  node('Conv', [x, W_(p + '.weight'), ...(opt.nobias ? [] : [W_(p + '.bias')])], {
    kernel_shape: [k, k],
    pads: [k >> 1, k >> 1, k >> 1, k >> 1],
    strides: [opt.s || 1, opt.s || 1],
  });
const rs = [];
const sizes = [
  [ph * 4, pw * 4],
  [ph * 2, pw * 2],
  [ph, pw],
  [Math.floor((ph - 1) / 2) + 1, Math.floor((pw - 1) / 2) + 1],
];
for (let i = 0; i < 4; i++) {
  let f = conv(feats[i], `depth_head.projects.${i}`, 1);
  if (i === 0 || i === 1) {
    const k = i === 0 ? 4 : 2;
    f = node(
      'ConvTranspose',
      [f, W_(`depth_head.resize_layers.${i}.weight`), W_(`depth_head.resize_layers.${i}.bias`)],
      { kernel_shape: [k, k], strides: [k, k] },
    );
  }
  if (i === 3) f = conv(f, 'depth_head.resize_layers.3', 3, { s: 2 });
  rs.push(conv(f, `depth_head.scratch.layer${i + 1}_rn`, 3, { nobias: true }));
}
const relu = (x) => node('Relu', [x]);
const rcu = (x, p) => node('Add', [conv(relu(conv(relu(x), p + '.conv1', 3)), p + '.conv2', 3), x]);
const resize = (x, h, w, c) =>
  node('Resize', [x, '', '', i64([1, c, h, w])], {
    mode: 'linear',
    coordinate_transformation_mode: 'align_corners',
  });
function fuse(p, a, b, size) {
  let o = a;
  if (b) o = node('Add', [o, rcu(b, p + '.resConfUnit1')]);
  o = rcu(o, p + '.resConfUnit2');
  o = resize(o, size[0], size[1], 64);
  return conv(o, p + '.out_conv', 1);
}
let p4 = fuse('depth_head.scratch.refinenet4', rs[3], null, sizes[2]);
let p3 = fuse('depth_head.scratch.refinenet3', p4, rs[2], sizes[1]);
let p2 = fuse('depth_head.scratch.refinenet2', p3, rs[1], sizes[0]);
let p1 = fuse('depth_head.scratch.refinenet1', p2, rs[0], [sizes[0][0] * 2, sizes[0][1] * 2]);
let y = conv(p1, 'depth_head.scratch.output_conv1', 3);
y = resize(y, ph * 14, pw * 14, 32);
y = conv(
  relu(conv(y, 'depth_head.scratch.output_conv2.0', 3)),
  'depth_head.scratch.output_conv2.2',
  1,
);
y = node('Mul', [node('Sigmoid', [y]), scalarF(MAXD)]);
// the graph's output under a fixed name
const outName = 'depth';
nodes.push(
  Buffer.concat([fBytes(1, y), fBytes(2, outName), fBytes(3, 'final'), fBytes(4, 'Identity')]),
);
// ---- graph / model
const vinfo = (name, dims) =>
  Buffer.concat([
    fBytes(1, name),
    fBytes(
      2,
      fBytes(
        1,
        Buffer.concat([
          fInt(1, 1),
          fBytes(2, Buffer.concat(dims.map((d) => fBytes(1, fInt(1, d))))),
        ]),
      ),
    ),
  ]);
const graph = Buffer.concat([
  ...nodes.map((n) => fBytes(1, n)),
  fBytes(2, 'da2_vits'),
  ...inits.map((t) => fBytes(5, t)),
  fBytes(11, vinfo('input', [1, 3, ph * 14, pw * 14])),
  fBytes(12, vinfo(outName, [1, 1, ph * 14, pw * 14])),
]);
const model = Buffer.concat([
  fInt(1, 8),
  fBytes(2, 'metricdepth-bench'),
  fBytes(7, graph),
  fBytes(8, Buffer.concat([fBytes(1, ''), fInt(2, 17)])),
]);
fs.writeFileSync(out, model);
console.log(
  `wrote ${out}: ${nodes.length} nodes, ${inits.length} initializers, ${(model.length / 1e6).toFixed(1)} MB, input 1x3x${ph * 14}x${pw * 14}`,
);
