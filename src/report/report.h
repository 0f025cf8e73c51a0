/* Internals of the report library shared by its files. */
#ifndef MD_REPORT_REPORT_H
#define MD_REPORT_REPORT_H

#include "metricdepth_report.h"

#endif
