/*
 * RFC 3339 times and calendar years, with no nginx dependency.
 *
 * Calendar arithmetic uses the proleptic Gregorian calendar and Howard
 * Hinnant's days-from-civil algorithm, so nothing depends on timegm(), the
 * time zone or the locale.  Times are kept within years 0000..9999
 * (MPN_TIME_MIN..MPN_TIME_MAX), the range RFC 3339 can write.
 */

#include "mpn_time.h"


static int mpn_time_digits(const char *p, size_t n, int *out);
static int mpn_time_leap(int64_t y);
static int mpn_time_month_days(int64_t y, int m);
static int64_t mpn_time_days_from_civil(int64_t y, int m, int d);
static void mpn_time_civil_from_days(int64_t z, int64_t *y, int *m, int *d);
static int64_t mpn_time_clamp(int64_t t);


/*
 * "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)", the 'T' and 'Z' in either
 * case.  A leap second (:60) is accepted, as RFC 3339 allows, and counts as
 * the first second of the next minute.
 */

int
mpn_time_parse(const char *s, size_t len, int64_t *out)
{
    int         year, month, day, hour, min, sec, oh, om;
    size_t      i;
    int64_t     t, off;

    if (s == NULL || len < MPN_TIME_LEN) {
        return -1;
    }

    if (mpn_time_digits(s, 4, &year) != 0
        || s[4] != '-'
        || mpn_time_digits(s + 5, 2, &month) != 0
        || s[7] != '-'
        || mpn_time_digits(s + 8, 2, &day) != 0
        || (s[10] != 'T' && s[10] != 't')
        || mpn_time_digits(s + 11, 2, &hour) != 0
        || s[13] != ':'
        || mpn_time_digits(s + 14, 2, &min) != 0
        || s[16] != ':'
        || mpn_time_digits(s + 17, 2, &sec) != 0)
    {
        return -1;
    }

    if (month < 1 || month > 12
        || day < 1 || day > mpn_time_month_days(year, month)
        || hour > 23 || min > 59 || sec > 60)
    {
        return -1;
    }

    i = 19;

    if (s[i] == '.') {
        i++;

        if (i >= len || s[i] < '0' || s[i] > '9') {
            return -1;
        }

        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }

        if (i >= len) {
            return -1;
        }
    }

    if (s[i] == 'Z' || s[i] == 'z') {
        off = 0;
        i++;

    } else if (s[i] == '+' || s[i] == '-') {
        if (len - i != 6
            || mpn_time_digits(s + i + 1, 2, &oh) != 0
            || s[i + 3] != ':'
            || mpn_time_digits(s + i + 4, 2, &om) != 0
            || oh > 23 || om > 59)
        {
            return -1;
        }

        off = (int64_t) oh * 3600 + om * 60;

        if (s[i] == '-') {
            off = -off;
        }

        i += 6;

    } else {
        return -1;
    }

    if (i != len) {
        return -1;
    }

    t = mpn_time_days_from_civil(year, month, day) * MPN_DAY
        + (int64_t) hour * 3600 + min * 60 + sec - off;

    if (t < MPN_TIME_MIN || t > MPN_TIME_MAX) {
        return -1;
    }

    *out = t;

    return 0;
}


size_t
mpn_time_format(int64_t t, char *buf)
{
    int      month, day, sod;
    int64_t  days, year;

    t = mpn_time_clamp(t);

    days = t / MPN_DAY;
    sod = (int) (t % MPN_DAY);

    if (sod < 0) {
        sod += MPN_DAY;
        days--;
    }

    mpn_time_civil_from_days(days, &year, &month, &day);

    buf[0] = (char) ('0' + year / 1000);
    buf[1] = (char) ('0' + year / 100 % 10);
    buf[2] = (char) ('0' + year / 10 % 10);
    buf[3] = (char) ('0' + year % 10);
    buf[4] = '-';
    buf[5] = (char) ('0' + month / 10);
    buf[6] = (char) ('0' + month % 10);
    buf[7] = '-';
    buf[8] = (char) ('0' + day / 10);
    buf[9] = (char) ('0' + day % 10);
    buf[10] = 'T';
    buf[11] = (char) ('0' + sod / 36000);
    buf[12] = (char) ('0' + sod / 3600 % 10);
    buf[13] = ':';
    buf[14] = (char) ('0' + sod % 3600 / 600);
    buf[15] = (char) ('0' + sod % 3600 / 60 % 10);
    buf[16] = ':';
    buf[17] = (char) ('0' + sod % 60 / 10);
    buf[18] = (char) ('0' + sod % 10);
    buf[19] = 'Z';
    buf[20] = '\0';

    return MPN_TIME_LEN;
}


int64_t
mpn_time_add_years(int64_t t, int years)
{
    int      month, day;
    int64_t  days, sod, year;

    t = mpn_time_clamp(t);

    days = t / MPN_DAY;
    sod = t % MPN_DAY;

    if (sod < 0) {
        sod += MPN_DAY;
        days--;
    }

    mpn_time_civil_from_days(days, &year, &month, &day);

    year += years;

    if (year < 0) {
        return MPN_TIME_MIN;
    }

    if (year > 9999) {
        return MPN_TIME_MAX;
    }

    if (month == 2 && day == 29 && !mpn_time_leap(year)) {
        day = 28;
    }

    return mpn_time_days_from_civil(year, month, day) * MPN_DAY + sod;
}


void
mpn_time_month(int64_t t, int64_t *start, int64_t *next)
{
    int      month, day;
    int64_t  year;

    mpn_time_civil_from_days(mpn_days_floor(mpn_time_clamp(t)), &year,
                             &month, &day);

    *start = mpn_time_days_from_civil(year, month, 1) * MPN_DAY;

    if (month == 12) {
        year++;
        month = 0;
    }

    *next = mpn_time_days_from_civil(year, month + 1, 1) * MPN_DAY;
}


void
mpn_time_year(int64_t t, int64_t *start, int64_t *next)
{
    int      month, day;
    int64_t  year;

    mpn_time_civil_from_days(mpn_days_floor(mpn_time_clamp(t)), &year,
                             &month, &day);

    *start = mpn_time_days_from_civil(year, 1, 1) * MPN_DAY;
    *next = mpn_time_days_from_civil(year + 1, 1, 1) * MPN_DAY;
}


int64_t
mpn_days_floor(int64_t seconds)
{
    int64_t  q;

    q = seconds / MPN_DAY;

    if (seconds % MPN_DAY < 0) {
        q--;
    }

    return q;
}


static int
mpn_time_digits(const char *p, size_t n, int *out)
{
    int     v;
    size_t  i;

    v = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    *out = v;

    return 0;
}


static int
mpn_time_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}


static int
mpn_time_month_days(int64_t y, int m)
{
    static const int  days[12] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (m == 2 && mpn_time_leap(y)) {
        return 29;
    }

    return days[m - 1];
}


/* days since 1970-01-01 of a proleptic Gregorian date */

static int64_t
mpn_time_days_from_civil(int64_t y, int m, int d)
{
    int64_t  era, yoe, doy, doe;

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


static void
mpn_time_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t  era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;

    *d = (int) (doy - (153 * mp + 2) / 5 + 1);
    *m = (int) (mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}


static int64_t
mpn_time_clamp(int64_t t)
{
    if (t < MPN_TIME_MIN) {
        return MPN_TIME_MIN;
    }

    if (t > MPN_TIME_MAX) {
        return MPN_TIME_MAX;
    }

    return t;
}
