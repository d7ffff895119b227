/* SPDX-License-Identifier: MIT */
#include "ratelimit.h"

void tcl_ratelimit_init(tcl_ratelimit_t *rl, uint64_t limit)
{
  *rl = (tcl_ratelimit_t){.limit = limit};
}

static bool tcl_ratelimit_over(const tcl_ratelimit_t *rl, uint64_t now)
{
  return now - rl->window_start >= TCL_RATELIMIT_WINDOW_NS;
}

/* The caller takes tcl_ratelimit_summary first: a window that is over has
 * nothing left to report when a new one starts here. */
bool tcl_ratelimit_allow(tcl_ratelimit_t *rl, uint64_t now)
{
  if (!rl->open || tcl_ratelimit_over(rl, now)) {
    rl->open = true;
    rl->window_start = now;
    rl->sent = rl->dropped = 0;
  }
  if (rl->sent < rl->limit) {
    rl->sent++;
    return true;
  }
  rl->dropped++;
  return false;
}

uint64_t tcl_ratelimit_summary(tcl_ratelimit_t *rl, uint64_t now)
{
  uint64_t dropped;

  if (!rl->open || !tcl_ratelimit_over(rl, now))
    return 0;
  dropped = rl->dropped;
  rl->open = false;
  rl->sent = rl->dropped = 0;
  return dropped;
}
