/* The capacity forecast against hand-computed least-squares fits: a perfect line, a noisy
 * series worked out on paper, flat and falling series, a full cluster, too few points. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "sched/sched.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-4)

static void test_perfect_line(void **state)
{
    (void)state;
    /* y = 10 + 2x over 7 days: today (x = 6) is 22; 40 is reached at x = 15, 9 days on. */
    const int64_t p[] = {10, 12, 14, 16, 18, 20, 22};
    struct mu_sched_forecast f;
    assert_int_equal(mu_sched_forecast(p, 7, 40, &f, NULL), 0);
    assert_int_equal(f.verdict, MU_SCHED_FORECAST_DAYS);
    NEAR(f.slope_per_day, 2.0);
    NEAR(f.intercept, 10.0);
    NEAR(f.r2, 1.0);
    NEAR(f.days_to_full, 9.0);
}

static void test_noisy_hand_computed(void **state)
{
    (void)state;
    /* x 0..6, y 1 3 2 5 4 6 7: mean x 3, mean y 4; Sxy = 26, Sxx = 28, Syy = 28.
     * slope 26/28 = 0.928571; intercept 4 - 3 x 0.928571 = 1.214286;
     * SSres = 28 - 26^2/28 = 3.857143, r2 = 1 - 3.857143/28 = 0.862245;
     * capacity 20 at x = (20 - 1.214286)/0.928571 = 20.230769, 14.230769 days after x = 6. */
    const int64_t p[] = {1, 3, 2, 5, 4, 6, 7};
    struct mu_sched_forecast f;
    assert_int_equal(mu_sched_forecast(p, 7, 20, &f, NULL), 0);
    assert_int_equal(f.verdict, MU_SCHED_FORECAST_DAYS);
    NEAR(f.slope_per_day, 26.0 / 28.0);
    NEAR(f.intercept, 4.0 - 3.0 * 26.0 / 28.0);
    NEAR(f.r2, 0.862245);
    NEAR(f.days_to_full, 14.230769);
}

static void test_flat_and_falling(void **state)
{
    (void)state;
    const int64_t flat[] = {5, 5, 5, 5, 5, 5, 5, 5};
    struct mu_sched_forecast f;
    assert_int_equal(mu_sched_forecast(flat, 8, 10, &f, NULL), 0);
    assert_int_equal(f.verdict, MU_SCHED_FORECAST_NOT_GROWING);
    NEAR(f.slope_per_day, 0.0);
    NEAR(f.intercept, 5.0);
    NEAR(f.r2, 1.0);

    const int64_t down[] = {70, 60, 50, 40, 30, 20, 10};
    assert_int_equal(mu_sched_forecast(down, 7, 100, &f, NULL), 0);
    assert_int_equal(f.verdict, MU_SCHED_FORECAST_NOT_GROWING);
    NEAR(f.slope_per_day, -10.0);
    NEAR(f.intercept, 70.0);
}

static void test_already_full(void **state)
{
    (void)state;
    /* Today's peak reaches the capacity: full now, whatever the trend. */
    const int64_t p[] = {90, 80, 70, 60, 70, 80, 100};
    struct mu_sched_forecast f;
    assert_int_equal(mu_sched_forecast(p, 7, 100, &f, NULL), 0);
    assert_int_equal(f.verdict, MU_SCHED_FORECAST_FULL);
    NEAR(f.days_to_full, 0.0);
    /* The line says full earlier than today but today's peak is below: 0 days, not < 0. */
    const int64_t q[] = {0, 20, 40, 60, 80, 100, 99};
    assert_int_equal(mu_sched_forecast(q, 7, 100, &f, NULL), 0);
    assert_int_equal(f.verdict, MU_SCHED_FORECAST_DAYS);
    assert_true(f.days_to_full >= 0.0);
}

static void test_too_few_and_bad(void **state)
{
    (void)state;
    const int64_t p[] = {1, 2, 3, 4, 5, 6};
    struct mu_sched_forecast f;
    assert_int_equal(mu_sched_forecast(p, 6, 100, &f, NULL), 0);
    assert_int_equal(f.verdict, MU_SCHED_FORECAST_TOO_FEW);
    assert_int_equal(mu_sched_forecast(NULL, 0, 100, &f, NULL), 0);
    assert_int_equal(f.verdict, MU_SCHED_FORECAST_TOO_FEW);
    struct mu_err err = {0};
    assert_int_equal(mu_sched_forecast(p, 6, -1, &f, &err), MU_EINVAL);
    assert_int_equal(mu_sched_forecast(NULL, 7, 1, &f, &err), MU_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perfect_line),     cmocka_unit_test(test_noisy_hand_computed),
        cmocka_unit_test(test_flat_and_falling), cmocka_unit_test(test_already_full),
        cmocka_unit_test(test_too_few_and_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
