/* Internals of the report library shared by its files. */
#ifndef MD_REPORT_REPORT_H
#define MD_REPORT_REPORT_H

#include "metricdepth_report.h"

/* mkdir that accepts an existing folder; the error names the path. */
md_status md_report_make_dir(const char *path, md_error *err);

#endif
