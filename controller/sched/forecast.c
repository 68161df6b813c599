/* The capacity forecast (sched.h): an ordinary least-squares line through daily peaks. */
#include "sched/sched.h"

#include <string.h>

int mu_sched_forecast(const int64_t *peaks, size_t n, int64_t capacity,
                      struct mu_sched_forecast *ret, struct mu_err *err)
{
    struct mu_sched_forecast f;

    if (capacity < 0 || (n > 0 && !peaks))
        return mu_err_set(err, MU_EINVAL, "a forecast needs peaks and a capacity >= 0");
    memset(&f, 0, sizeof f);
    if (n < MU_SCHED_FORECAST_MIN_POINTS) {
        f.verdict = MU_SCHED_FORECAST_TOO_FEW;
        *ret = f;
        return 0;
    }
    /* Centred sums: x's mean is (n-1)/2; the peaks are at most 2^53 in practice. */
    double dn = (double)n, mx = (dn - 1) / 2, my = 0;
    for (size_t i = 0; i < n; i++)
        my += (double)peaks[i];
    my /= dn;
    double sxx = 0, sxy = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = (double)i - mx, dy = (double)peaks[i] - my;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    f.slope_per_day = sxy / sxx; /* sxx > 0: n >= 2 */
    f.intercept = my - f.slope_per_day * mx;
    double ssr = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)peaks[i] - (f.intercept + f.slope_per_day * (double)i);
        ssr += e * e;
    }
    if (syy > 0)
        f.r2 = 1 - ssr / syy;
    else
        f.r2 = 1; /* a flat series lies on its own line */

    if (peaks[n - 1] >= capacity) {
        f.verdict = MU_SCHED_FORECAST_FULL;
        f.days_to_full = 0;
    } else if (f.slope_per_day <= 0) {
        f.verdict = MU_SCHED_FORECAST_NOT_GROWING;
    } else {
        f.verdict = MU_SCHED_FORECAST_DAYS;
        double x_full = ((double)capacity - f.intercept) / f.slope_per_day;
        f.days_to_full = x_full - (dn - 1);
        if (f.days_to_full < 0)
            f.days_to_full = 0;
    }
    *ret = f;
    return 0;
}
