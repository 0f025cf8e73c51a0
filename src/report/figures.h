/* Figures of the evaluation report (the seed report's Figs. 1 and 3 and the
 * scale scatter), drawn with cairo. Internal: the eval CLI and tests include it.
 *
 * Point clouds use md_pointcloud_save_ply's camera frame (x right, y down,
 * z forward, metres). A view is a virtual pinhole camera that looks at `center`
 * from `distance` away, turned by yaw about the vertical (y) axis and tilted
 * down by pitch: its forward axis is Ry(yaw)·Rx(pitch)·(0,0,1) =
 * (sin(yaw)·cos(pitch), sin(pitch), cos(yaw)·cos(pitch)), its position
 * center − distance·forward. yaw = pitch = 0 with center on the optical axis
 * and distance = |center| is the original camera. */
#ifndef MD_VIZ_FIGURES_H
#define MD_VIZ_FIGURES_H

#include "metricdepth_report.h"

#include <cairo.h>

/* ----------------------------------------------------------- point clouds */

/* Clouds are the core library's md_pointcloud. */
typedef md_pointcloud md_cloud;

/* Mean of the points (0,0,0 when empty). */
void md_cloud_centroid(const md_cloud *c, double out[3]);

typedef struct {
    int width, height;  /* raster size in pixels */
    double focal;       /* pixels; principal point (width/2 + shift_u, height/2 + shift_v) */
    double yaw_deg;     /* about the vertical axis, positive turns forward towards +x */
    double pitch_deg;   /* positive looks down (towards +y) */
    double center[3];   /* looked-at point */
    double distance;    /* from the virtual camera to center */
    double shift_u, shift_v; /* principal point offset from the panel centre, pixels */
} md_view;

/* Projects p: pixel coordinates (u, v) (pixel i covers [i, i+1)) and depth
 * along the view's forward axis. Returns 0 if the point is behind the camera. */
int md_view_project(const md_view *view, const double p[3], double *u, double *v, double *z);

/* An RGB raster with a z-buffer: points are splatted as (2r+1)^2 squares, a
 * pixel keeps the nearest point (on a tie, the one splatted last). */
typedef struct {
    int width, height;
    uint8_t *rgb; /* 3 per pixel */
    float *z;     /* +inf where empty */
} md_raster;

md_status md_raster_init(md_raster *r, int width, int height, const uint8_t background[3],
                         md_error *err);
void md_raster_free(md_raster *r);
/* Splats every point of c; colour from color if not NULL, else the cloud's own
 * (grey if it has none). */
void md_raster_splat(md_raster *r, const md_view *view, const md_cloud *c, const uint8_t color[3],
                     int radius);

/* The seed's Fig. 3: up to three panels side by side, each a predicted cloud
 * (colour colors[i]) over the grey ground-truth cloud, all from one view.
 * titles[i] under each panel header. */
md_status md_fig_point_clouds(const char *path, const md_cloud *gt, const md_cloud *preds,
                              const uint8_t (*colors)[3], const char *const *titles, int n_panels,
                              const md_view *view, md_error *err);
/* A view for gt: yaw, pitch as given, looking at its centroid from 1.6 times the
 * centroid's distance; focal length and principal point shift put the 1st..99th
 * percentile of gt's projection on each axis in the middle 90 % of a
 * width x height panel (K's fx scaled to the panel and no shift when gt has a
 * single point or none). */
md_view md_view_for_cloud(const md_cloud *gt, const md_intrinsics *K, int image_width,
                          int width, int height, double yaw_deg, double pitch_deg);

/* ------------------------------------------------------------- depth panel */

/* Horizontal colour bar with its top-left corner at integer (x, y): column i
 * (0 <= i < w) of the bar is md_colormap_lookup(cmap, i / (w − 1)) exactly,
 * rows y..y+h−1. Ticks and numbers below it, label under them (about 34 px). */
void md_fig_draw_colorbar(cairo_t *cr, int x, int y, int w, int h, md_colormap cmap, double vmin,
                          double vmax, const char *label);

typedef struct {
    const md_image *rgb;
    const md_depth *gt;
    const md_depth *unscaled;
    const md_depth *adaptive; /* NULL: the adaptive panel is left out */
    const md_depth *oracle;
    double abs_rel_unscaled, abs_rel_adaptive, abs_rel_oracle;
    double scale_adaptive, scale_oracle;
    const char *title; /* figure title (image name) */
} md_depth_panel;

/* The seed's Fig. 1: RGB | ground truth | unscaled | adaptive | oracle on one
 * turbo depth scale (labelled bar, metres) plus the relative error map
 * |pred − gt| / gt of adaptive (or unscaled) on its own inferno bar; invalid
 * pixels black. */
md_status md_fig_depth_panel(const char *path, const md_depth_panel *p, md_error *err);

/* ----------------------------------------------------------------- scatter */

#define MD_SCATTER_W 640
#define MD_SCATTER_H 600
#define MD_SCATTER_LEFT 80.0
#define MD_SCATTER_RIGHT 30.0
#define MD_SCATTER_TOP 50.0
#define MD_SCATTER_BOTTOM 70.0

/* Shared data range of both axes: [min, max] of all x and y, widened by 5 % of
 * the span on each side (by 0.1 when the span is 0). */
typedef struct {
    double lo, hi;
} md_scatter_frame;

void md_scatter_frame_for(const double *x, const double *y, size_t n, md_scatter_frame *f);
/* Data to pixel: left + (x − lo)/(hi − lo)·(W − left − right), and
 * H − bottom − (y − lo)/(hi − lo)·(H − top − bottom). */
void md_scatter_to_pixel(const md_scatter_frame *f, double x, double y, double *px, double *py);

/* Predicted vs oracle ln s, one dot per image: group 0 (train, blue) and 1
 * (test, orange), identity line, ticks, labels, legend. */
md_status md_fig_scatter(const char *path, const double *oracle_log, const double *pred_log,
                         const int *group, size_t n, const char *title, md_error *err);

/* Writes a cairo image surface as PNG through the atomic writer. */
md_status md_fig_write_surface(cairo_surface_t *surf, const char *path, md_error *err);
/* A white width x height figure with a sans-serif font selected. */
md_status md_fig_begin(int width, int height, const char *path, cairo_surface_t **surf,
                       cairo_t **cr, md_error *err);
/* Ends a figure begun with md_fig_begin: turns a cairo failure into an error,
 * writes the PNG (atomically) when st is still MD_OK, releases both. */
md_status md_fig_finish(cairo_surface_t *surf, cairo_t *cr, const char *path, md_status st,
                        md_error *err);
/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about n ticks
 * over span (1 when span is not positive). */
double md_fig_nice_step(double span, int n);
/* v printed with as many decimals as step needs ("0.25" for step 0.05). */
void md_fig_tick_label(char *buf, size_t size, double v, double step);
/* Text (current cairo font) with its ink box anchored: (ax, ay) in [0,1] of the
 * box lands on (x, y); 0.5 = centred. */
void md_fig_text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay);

#endif
