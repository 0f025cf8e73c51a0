/* The built-in sample scene: a ray-cast furnished room with exact metric depth.
 *
 * World frame: metres, x right, y up, z forward (into the room). The room is
 * the box x in [-2.2, 2.2], y in [0, 2.8] (floor 0, ceiling 2.8), z in
 * [-1.5, 5.5] (back wall at z = 5.5). Furniture: a table (top 0.70..0.76 m
 * high over x -0.2..1.0, z 2.5..3.3, four legs), a small checkered box on the
 * table, a wooden crate on the floor, a tall cabinet against the right wall and
 * a ball (radius 0.3) resting on a tiled rug. One point light near the ceiling
 * gives Lambert shading with hard shadows plus an ambient term.
 *
 * Camera: pinhole, fx = fy = 0.8 * width (horizontal field of view
 * 2 atan(0.625) = 64 degrees), cx = (width - 1) / 2, cy = (height - 1) / 2:
 * pixel (u, v) has its centre at image coordinates (u, v), the convention of
 * the back-projection x = (u - cx) z / fx. Poses (position, yaw to the right,
 * pitch down, in degrees):
 *   variant 0: ( 0.0, 1.50,  0.0), yaw   0, pitch 10
 *   variant 1: (-0.8, 1.50,  0.4), yaw  12, pitch 12
 *   variant 2: ( 0.8, 1.40,  0.2), yaw -10, pitch  8
 *   variant 3: ( 0.2, 1.50, -0.5), yaw   0, pitch  0 (level)
 * Camera axes in world coordinates (yaw p, pitch t): right = (cos p, 0, -sin p),
 * down = (-sin p sin t, -cos t, -cos p sin t), forward = (sin p cos t, -sin t,
 * cos p cos t). The ray of pixel (u, v) is right*a + down*b + forward with
 * a = (u - cx)/fx, b = (v - cy)/fy, so its hit parameter is exactly the
 * camera-frame z of the hit point: depth = z-distance in metres (not ray
 * length), evaluated at the pixel centre. Every pixel sees a surface of the
 * closed room, so every depth pixel is valid (about 1 to 6 m).
 *
 * The colour image averages 4 rays per pixel (fixed sub-pixel offsets) and adds
 * a little deterministic hash noise; nothing is random.
 */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

typedef struct {
    double x, y, z;
} vec3;

static vec3 v3(double x, double y, double z)
{
    vec3 r = {x, y, z};
    return r;
}
static vec3 vadd(vec3 a, vec3 b) { return v3(a.x + b.x, a.y + b.y, a.z + b.z); }
static vec3 vsub(vec3 a, vec3 b) { return v3(a.x - b.x, a.y - b.y, a.z - b.z); }
static vec3 vscale(vec3 a, double s) { return v3(a.x * s, a.y * s, a.z * s); }
static double vdot(vec3 a, vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
static vec3 vnorm(vec3 a)
{
    double n = sqrt(vdot(a, a));
    return n > 0 ? vscale(a, 1.0 / n) : a;
}
static double vget(vec3 a, int i) { return i == 0 ? a.x : i == 1 ? a.y : a.z; }

enum {
    MAT_FLOOR,
    MAT_CEILING,
    MAT_WALL,
    MAT_TABLE,
    MAT_LEG,
    MAT_CRATE,
    MAT_CHECKER,
    MAT_CABINET,
    MAT_BALL
};

typedef struct {
    double lo[3], hi[3];
    int mat;
} box;

#define ROOM_X0 (-2.2)
#define ROOM_X1 2.2
#define ROOM_Y1 2.8
#define ROOM_Z0 (-1.5)
#define ROOM_Z1 5.5

static const box k_boxes[] = {
    {{-0.20, 0.70, 2.50}, {1.00, 0.76, 3.30}, MAT_TABLE},   /* table top */
    {{-0.15, 0.00, 2.55}, {-0.09, 0.70, 2.61}, MAT_LEG},    /* legs */
    {{0.89, 0.00, 2.55}, {0.95, 0.70, 2.61}, MAT_LEG},
    {{-0.15, 0.00, 3.19}, {-0.09, 0.70, 3.25}, MAT_LEG},
    {{0.89, 0.00, 3.19}, {0.95, 0.70, 3.25}, MAT_LEG},
    {{0.55, 0.76, 2.75}, {0.85, 1.02, 3.05}, MAT_CHECKER},  /* box on the table */
    {{-1.80, 0.00, 3.20}, {-1.20, 0.55, 3.80}, MAT_CRATE},  /* crate */
    {{1.70, 0.00, 4.00}, {2.20, 1.80, 5.00}, MAT_CABINET},  /* cabinet */
};
#define N_BOXES (sizeof k_boxes / sizeof k_boxes[0])

static const double k_ball_c[3] = {-0.70, 0.30, 2.20};
#define BALL_R 0.30
static const double k_light[3] = {0.40, 2.55, 2.20};

typedef struct {
    double pos[3], yaw_deg, pitch_deg;
} pose;

static const pose k_poses[4] = {
    {{0.0, 1.50, 0.0}, 0.0, 10.0},
    {{-0.8, 1.50, 0.4}, 12.0, 12.0},
    {{0.8, 1.40, 0.2}, -10.0, 8.0},
    {{0.2, 1.50, -0.5}, 0.0, 0.0},
};

typedef struct {
    double t;
    vec3 p, n;
    int mat;
    int face; /* room: 0..5 = -x,+x,-y,+y,-z,+z; boxes: axis*2 + (positive side) */
} hit;

/* ------------------------------------------------------------ noise */

static uint32_t hash3(int32_t x, int32_t y, int32_t z)
{
    uint32_t h = (uint32_t)x * 0x8da6b343u ^ (uint32_t)y * 0xd8163841u ^ (uint32_t)z * 0xcb1ab31fu;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h;
}

static double hash01(int32_t x, int32_t y, int32_t z)
{
    return (double)(hash3(x, y, z) >> 8) / 16777216.0;
}

/* Smooth 1-D value noise in [0, 1]. */
static double noise1(double x, int32_t seed)
{
    double f = floor(x);
    double t = x - f;
    int32_t i = (int32_t)f;
    double s = t * t * (3 - 2 * t);
    return hash01(i, seed, 7) * (1 - s) + hash01(i + 1, seed, 7) * s;
}

/* Smooth 2-D value noise in [0, 1]. */
static double noise2(double x, double y, int32_t seed)
{
    double fx = floor(x), fy = floor(y);
    double tx = x - fx, ty = y - fy;
    int32_t ix = (int32_t)fx, iy = (int32_t)fy;
    double sx = tx * tx * (3 - 2 * tx), sy = ty * ty * (3 - 2 * ty);
    double a = hash01(ix, iy, seed), b = hash01(ix + 1, iy, seed);
    double c = hash01(ix, iy + 1, seed), d = hash01(ix + 1, iy + 1, seed);
    return (a * (1 - sx) + b * sx) * (1 - sy) + (c * (1 - sx) + d * sx) * sy;
}

/* ------------------------------------------------------------ intersections */

static int hit_box(const box *b, vec3 o, vec3 d, double tmax_in, hit *h)
{
    double t0 = -INFINITY, t1 = INFINITY;
    int axis = -1, side = 0;
    for (int i = 0; i < 3; i++) {
        double oi = vget(o, i), di = vget(d, i);
        if (fabs(di) < 1e-15) {
            if (oi < b->lo[i] || oi > b->hi[i])
                return 0;
            continue;
        }
        double ta = (b->lo[i] - oi) / di, tb = (b->hi[i] - oi) / di;
        int s = 0; /* entering through the low face */
        if (ta > tb) {
            double tmp = ta;
            ta = tb;
            tb = tmp;
            s = 1;
        }
        if (ta > t0) {
            t0 = ta;
            axis = i;
            side = s;
        }
        if (tb < t1)
            t1 = tb;
    }
    if (axis < 0 || t0 > t1 || t0 <= 1e-9 || t0 >= tmax_in)
        return 0;
    h->t = t0;
    h->p = vadd(o, vscale(d, t0));
    double nn[3] = {0, 0, 0};
    nn[axis] = side ? 1.0 : -1.0;
    h->n = v3(nn[0], nn[1], nn[2]);
    h->mat = b->mat;
    h->face = axis * 2 + side;
    return 1;
}

static int hit_ball(vec3 o, vec3 d, double tmax_in, hit *h)
{
    vec3 c = v3(k_ball_c[0], k_ball_c[1], k_ball_c[2]);
    vec3 oc = vsub(o, c);
    double a = vdot(d, d), b = vdot(oc, d), cc = vdot(oc, oc) - BALL_R * BALL_R;
    double disc = b * b - a * cc;
    if (disc < 0)
        return 0;
    double t = (-b - sqrt(disc)) / a;
    if (t <= 1e-9 || t >= tmax_in)
        return 0;
    h->t = t;
    h->p = vadd(o, vscale(d, t));
    h->n = vscale(vsub(h->p, c), 1.0 / BALL_R);
    h->mat = MAT_BALL;
    h->face = 0;
    return 1;
}

/* The room from inside: the nearest exit face. */
static void hit_room(vec3 o, vec3 d, hit *h)
{
    const double lo[3] = {ROOM_X0, 0.0, ROOM_Z0}, hi[3] = {ROOM_X1, ROOM_Y1, ROOM_Z1};
    double best = INFINITY;
    int face = 0;
    for (int i = 0; i < 3; i++) {
        double oi = vget(o, i), di = vget(d, i);
        if (di > 1e-15) {
            double t = (hi[i] - oi) / di;
            if (t < best) {
                best = t;
                face = i * 2 + 1;
            }
        } else if (di < -1e-15) {
            double t = (lo[i] - oi) / di;
            if (t < best) {
                best = t;
                face = i * 2;
            }
        }
    }
    h->t = best;
    h->p = vadd(o, vscale(d, best));
    double nn[3] = {0, 0, 0};
    nn[face / 2] = (face & 1) ? -1.0 : 1.0; /* pointing into the room */
    h->n = v3(nn[0], nn[1], nn[2]);
    h->face = face;
    h->mat = face == 2 ? MAT_FLOOR : face == 3 ? MAT_CEILING : MAT_WALL;
}

/* Nearest object hit (furniture and ball) closer than tmax_in. */
static int hit_objects(vec3 o, vec3 d, double tmax_in, hit *best)
{
    int any = 0;
    double tmax = tmax_in;
    hit h;
    for (size_t i = 0; i < N_BOXES; i++) {
        if (hit_box(&k_boxes[i], o, d, tmax, &h)) {
            *best = h;
            tmax = h.t;
            any = 1;
        }
    }
    if (hit_ball(o, d, tmax, &h)) {
        *best = h;
        any = 1;
    }
    return any;
}

static void trace(vec3 o, vec3 d, hit *h)
{
    hit_room(o, d, h);
    hit obj;
    if (hit_objects(o, d, h->t, &obj))
        *h = obj;
}

/* ------------------------------------------------------------ materials */

static vec3 mix3(vec3 a, vec3 b, double t) { return vadd(vscale(a, 1 - t), vscale(b, t)); }

static double fract(double x) { return x - floor(x); }

/* Planks running along `along`, `across` metres wide; ids seed the tint. */
static vec3 wood(double along, double across, double width, double length, vec3 base,
                 int32_t seed)
{
    double row = floor(across / width);
    double off = hash01((int32_t)row, seed, 1) * length;
    double col = floor((along + off) / length);
    int32_t id = (int32_t)(row * 131 + col);
    double tint = 0.82 + 0.3 * hash01(id, seed, 2);
    double v = fract(across / width);
    double u = fract((along + off) / length);
    double grain = 0.5 + 0.5 * sin(2 * PI * (v * 6.0 + 1.6 * noise1(along * 2.5 + id, seed)));
    grain = 0.8 + 0.2 * grain * (0.7 + 0.3 * noise2(along * 30, v * 8, seed + id));
    vec3 c = vscale(base, tint * grain);
    if (v < 0.03 || v > 0.97 || u < 0.006)
        c = vscale(c, 0.45); /* the gaps between planks */
    return c;
}

static vec3 albedo(const hit *h)
{
    vec3 p = h->p;
    switch (h->mat) {
    case MAT_FLOOR: {
        /* A tiled rug (checker) under the ball, wood planks elsewhere. */
        if (p.x > -1.3 && p.x < 0.1 && p.z > 1.4 && p.z < 3.0) {
            if (p.x < -1.25 || p.x > 0.05 || p.z < 1.45 || p.z > 2.95)
                return v3(0.55, 0.16, 0.12); /* border */
            int cx = (int)floor(p.x / 0.15), cz = (int)floor(p.z / 0.15);
            double n = 0.9 + 0.1 * noise2(p.x * 40, p.z * 40, 11);
            return ((cx + cz) & 1) ? vscale(v3(0.78, 0.72, 0.60), n)
                                   : vscale(v3(0.20, 0.30, 0.45), n);
        }
        return wood(p.z, p.x, 0.18, 1.4, v3(0.62, 0.42, 0.24), 3);
    }
    case MAT_CEILING: {
        double dx = p.x - k_light[0], dz = p.z - k_light[2];
        if (dx * dx + dz * dz < 0.15 * 0.15)
            return v3(3.0, 2.9, 2.6); /* the lamp (over-bright, clipped) */
        return v3(0.93, 0.93, 0.91);
    }
    case MAT_WALL: {
        double g = p.y / ROOM_Y1;
        vec3 c = mix3(v3(0.80, 0.74, 0.64), v3(0.90, 0.88, 0.82), g);
        if (h->face == 0 || h->face == 1)
            c = mix3(v3(0.66, 0.74, 0.70), v3(0.84, 0.88, 0.84), g); /* side walls: sage */
        c = vscale(c, 0.96 + 0.04 * noise2(p.x * 20 + p.z * 20, p.y * 20, 5));
        if (p.y < 0.10)
            return v3(0.92, 0.92, 0.90); /* skirting board */
        if (h->face == 5) { /* back wall: a framed picture and a window */
            if (p.x > -1.2 && p.x < -0.2 && p.y > 1.2 && p.y < 1.9) {
                if (p.x < -1.15 || p.x > -0.25 || p.y < 1.25 || p.y > 1.85)
                    return v3(0.25, 0.17, 0.10);
                double s = (p.y - 1.25) / 0.6;
                vec3 sky = mix3(v3(0.95, 0.70, 0.45), v3(0.35, 0.55, 0.85), s);
                double hill = 0.3 + 0.15 * sin(p.x * 9.0);
                return s < hill ? v3(0.25, 0.45, 0.22) : sky;
            }
            if (p.x > 0.6 && p.x < 1.6 && p.y > 1.0 && p.y < 2.2) {
                if (fabs(p.x - 1.1) < 0.025 || fabs(p.y - 1.6) < 0.025 || p.x < 0.64 ||
                    p.x > 1.56 || p.y < 1.04 || p.y > 2.16)
                    return v3(0.95, 0.95, 0.95);
                return mix3(v3(0.75, 0.85, 0.95), v3(0.55, 0.70, 0.92), (p.y - 1.0) / 1.2);
            }
        }
        return c;
    }
    case MAT_TABLE:
        return wood(p.x, p.z, 0.16, 1.3, v3(0.45, 0.27, 0.14), 17);
    case MAT_LEG:
        return v3(0.22, 0.14, 0.08);
    case MAT_CRATE: {
        double along = h->face / 2 == 1 ? p.x : p.x + p.z;
        double across = h->face / 2 == 1 ? p.z : p.y;
        return wood(along, across, 0.11, 0.7, v3(0.72, 0.55, 0.33), 29);
    }
    case MAT_CHECKER: {
        int a = (int)floor(p.x / 0.05), b = (int)floor(p.y / 0.05), c = (int)floor(p.z / 0.05);
        return ((a + b + c) & 1) ? v3(0.80, 0.12, 0.10) : v3(0.92, 0.90, 0.85);
    }
    case MAT_CABINET: {
        vec3 c = v3(0.36, 0.45, 0.58);
        double panel = fabs(p.y - 0.9);
        if (panel < 0.01 || fabs(p.z - 4.5) < 0.008)
            return vscale(c, 0.5);
        if (fabs(p.z - 4.5) < 0.06 && fabs(p.y - 1.2) < 0.08 && h->face == 0)
            return v3(0.8, 0.8, 0.75); /* handles */
        return c;
    }
    case MAT_BALL: {
        double band = sin(atan2(h->n.z, h->n.x) * 3.0) * 0.5 + 0.5;
        return band > 0.5 ? v3(0.90, 0.45, 0.10) : v3(0.95, 0.85, 0.25);
    }
    default: return v3(1, 0, 1);
    }
}

static vec3 shade(const hit *h, vec3 view_dir)
{
    vec3 a = albedo(h);
    if (h->mat == MAT_CEILING && (a.x > 1.0))
        return a;
    vec3 light = v3(k_light[0], k_light[1], k_light[2]);
    vec3 to_light = vsub(light, h->p);
    double dist2 = vdot(to_light, to_light);
    vec3 l = vscale(to_light, 1.0 / sqrt(dist2));
    double ndl = vdot(h->n, l);
    double direct = 0;
    if (ndl > 0) {
        vec3 o = vadd(h->p, vscale(h->n, 1e-6));
        hit occ;
        if (!hit_objects(o, vsub(light, o), 1.0, &occ))
            direct = ndl * 5.0 / (1.0 + dist2);
    }
    if (h->mat == MAT_CEILING)
        direct *= 0.1; /* the lamp shines downwards */
    /* Ambient with a touch of height-dependent occlusion near the floor. */
    double ambient = 0.30 + 0.10 * fmin(h->p.y / ROOM_Y1, 1.0);
    vec3 c = vscale(a, ambient + direct);
    if (h->mat == MAT_BALL && direct > 0) {
        vec3 r = vsub(vscale(h->n, 2 * vdot(h->n, l)), l);
        double spec = pow(fmax(0.0, -vdot(r, vnorm(view_dir))), 40.0) * 0.6;
        c = vadd(c, v3(spec, spec, spec));
    }
    return c;
}

static uint8_t to_u8(double v)
{
    /* A mild gamma so the shading reads like a photo. */
    v = v <= 0 ? 0 : pow(v, 1.0 / 1.3);
    v = v * 255.0 + 0.5;
    return (uint8_t)(v >= 255.0 ? 255 : v);
}

md_status md_render_sample_scene(int width, int height, int variant, md_image *rgb,
                                 md_depth *depth, md_intrinsics *K, md_error *err)
{
    if (width < 1 || height < 1 || width > MD_MAX_DIM || height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "sample scene: size %dx%d out of range", width, height);
    if (variant < 0 || variant > 3)
        return md_fail(err, MD_ERR_ARG, "sample scene: variant %d not in 0..3", variant);
    if (!rgb && !depth && !K)
        return md_fail(err, MD_ERR_ARG, "sample scene: no output requested");
    size_t n = (size_t)width * (size_t)height, bytes;
    if (!md_mul_size(n, 3, &bytes))
        return md_fail(err, MD_ERR_NOMEM, "sample scene: image too large");

    md_intrinsics k;
    k.fx = k.fy = 0.8 * width;
    k.cx = (width - 1) * 0.5;
    k.cy = (height - 1) * 0.5;

    uint8_t *pix = NULL;
    float *dep = NULL;
    if (rgb && !(pix = md_malloc(bytes, "sample scene image", err)))
        return MD_ERR_NOMEM;
    if (depth && !(dep = md_malloc(n * sizeof *dep, "sample scene depth", err))) {
        free(pix);
        return MD_ERR_NOMEM;
    }

    const pose *ps = &k_poses[variant];
    double yaw = ps->yaw_deg * PI / 180.0, pitch = ps->pitch_deg * PI / 180.0;
    vec3 right = v3(cos(yaw), 0.0, -sin(yaw));
    vec3 down = v3(-sin(yaw) * sin(pitch), -cos(pitch), -cos(yaw) * sin(pitch));
    vec3 fwd = v3(sin(yaw) * cos(pitch), -sin(pitch), cos(yaw) * cos(pitch));
    vec3 o = v3(ps->pos[0], ps->pos[1], ps->pos[2]);
    static const double sub[4][2] = {{-0.25, -0.25}, {0.25, -0.25}, {-0.25, 0.25}, {0.25, 0.25}};

    for (int v = 0; v < height; v++) {
        for (int u = 0; u < width; u++) {
            size_t i = (size_t)v * (size_t)width + (size_t)u;
            if (dep) {
                double a = (u - k.cx) / k.fx, b = (v - k.cy) / k.fy;
                vec3 d = vadd(vadd(vscale(right, a), vscale(down, b)), fwd);
                hit h;
                trace(o, d, &h);
                dep[i] = (float)h.t;
            }
            if (pix) {
                vec3 acc = v3(0, 0, 0);
                for (int s = 0; s < 4; s++) {
                    double a = (u + sub[s][0] - k.cx) / k.fx, b = (v + sub[s][1] - k.cy) / k.fy;
                    vec3 d = vadd(vadd(vscale(right, a), vscale(down, b)), fwd);
                    hit h;
                    trace(o, d, &h);
                    acc = vadd(acc, shade(&h, d));
                }
                acc = vscale(acc, 0.25);
                double grain = (hash01(u, v, 1000 + variant) - 0.5) * 0.02;
                pix[3 * i + 0] = to_u8(acc.x + grain);
                pix[3 * i + 1] = to_u8(acc.y + grain);
                pix[3 * i + 2] = to_u8(acc.z + grain);
            }
        }
    }
    if (rgb) {
        rgb->width = width;
        rgb->height = height;
        rgb->pixels = pix;
    }
    if (depth) {
        depth->width = width;
        depth->height = height;
        depth->data = dep;
        depth->mask = NULL;
    }
    if (K)
        *K = k;
    return MD_OK;
}
