/*
 * Deterministic images: a smooth scene plus noise, reproducible from the seed,
 * with the frame number stamped into the first four pixels (one byte each,
 * least significant first) so a test can tell a lost, duplicated or
 * overwritten frame.  The scene is defined in sensor coordinates, so an ROI
 * crops it and binning averages it, as on a real sensor.
 *
 * A camera costs its host nothing but the transfer, so frames are not
 * rendered while acquiring: a pool of distinct frames is rendered once per
 * ROI/binning/bit depth/seed (scene + noise at an offset chosen by the frame
 * number + a slow drift, so a time series of means is not flat), and frame n
 * is pool frame (n - 1) % pool_frames copied into the buffer with its number
 * stamped in -- one memory copy per frame.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define NOISE_SPAN 4099 /* prime, so consecutive frames get unrelated offsets */
#define POOL_BYTES (64u << 20) /* at most this much of rendered frames */
#define POOL_MIN 4
#define POOL_MAX 64

uint64_t sim_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Scene brightness in [0, 1] at sensor position (x, y): a beam-like spot on
 * a gentle ripple, built from separable factors so it is cheap to fill. */
static void scene_factors(double *fx, double *gx, int n, int start, int bin, double centre,
                          double width, double wavelength)
{
    for (int i = 0; i < n; ++i) {
        double pos = start + (i + 0.5) * bin;
        double d = (pos - centre) / width;
        fx[i] = exp(-0.5 * d * d);
        gx[i] = 0.5 + 0.5 * cos(2.0 * M_PI * pos / wavelength);
    }
}

void sim_pixels_free(sim_pixels *px)
{
    free(px->pool);
    memset(px, 0, sizeof *px);
}

int sim_pixels_prepare(sim_pixels *px, const rgn_type *roi, int16 bit_depth, uint64_t seed)
{
    if (px->pool && memcmp(&px->roi, roi, sizeof *roi) == 0 && px->bit_depth == bit_depth
        && px->seed == seed)
        return 1; /* cached */
    sim_pixels_free(px);
    int w = (roi->s2 - roi->s1 + 1) / roi->sbin;
    int h = (roi->p2 - roi->p1 + 1) / roi->pbin;
    size_t n = (size_t)w * (size_t)h;
    size_t fit = POOL_BYTES / (n * sizeof(uint16_t));
    unsigned frames = fit < POOL_MIN ? POOL_MIN : fit > POOL_MAX ? POOL_MAX : (unsigned)fit;
    uint16_t *pattern = malloc(n * sizeof *pattern);
    uint16_t *noise = malloc((n + NOISE_SPAN) * sizeof *noise);
    px->pool = malloc((size_t)frames * n * sizeof *px->pool);
    double *fx = malloc(sizeof(double) * (size_t)(2 * w + 2 * h));
    if (!pattern || !noise || !px->pool || !fx) {
        free(fx);
        free(pattern);
        free(noise);
        sim_pixels_free(px);
        return 0;
    }
    double *gx = fx + w, *fy = gx + w, *gy = fy + h;
    scene_factors(fx, gx, w, roi->s1, roi->sbin, 0.55 * SENSOR_WIDTH, 0.12 * SENSOR_WIDTH, 211.0);
    scene_factors(fy, gy, h, roi->p1, roi->pbin, 0.45 * SENSOR_HEIGHT, 0.09 * SENSOR_HEIGHT,
                  157.0);

    double full = (double)((1u << bit_depth) - 1u);
    double dark = full > 1000 ? 100.0 : full * 0.05;
    double spot = 0.60 * full, ripple = 0.10 * full;
    for (int y = 0; y < h; ++y) {
        uint16_t *row = pattern + (size_t)y * (size_t)w;
        for (int x = 0; x < w; ++x)
            row[x] = (uint16_t)(dark + spot * fx[x] * fy[y] + ripple * gx[x] * gy[y]);
    }
    free(fx);

    /* Approximately Gaussian noise (sum of four uniform bytes), at most
     * ~5% of full scale, so scene + noise stays inside the bit depth. */
    uint64_t state = seed ^ ((uint64_t)bit_depth << 48) ^ ((uint64_t)w << 24) ^ (uint64_t)h;
    double scale = 0.05 * full / 1020.0;
    for (size_t i = 0; i < n + NOISE_SPAN; ++i) {
        uint64_t r = splitmix(&state);
        unsigned sum = (unsigned)(r & 0xFF) + (unsigned)((r >> 8) & 0xFF)
                       + (unsigned)((r >> 16) & 0xFF) + (unsigned)((r >> 24) & 0xFF);
        noise[i] = (uint16_t)(sum * scale);
    }
    /* frame k of the pool is what frame number k + 1 looks like */
    double drift_scale = 0.01 * full;
    for (unsigned k = 0; k < frames; ++k) {
        uint32_t nr = k + 1;
        size_t offset = ((uint64_t)nr * 2654435761ull) % NOISE_SPAN;
        uint16_t drift = (uint16_t)(drift_scale * (1.0 + sin(2.0 * M_PI * nr / 200.0)));
        uint16_t *restrict out = px->pool + (size_t)k * n;
        const uint16_t *restrict nz = noise + offset;
        for (size_t i = 0; i < n; ++i)
            out[i] = (uint16_t)(pattern[i] + nz[i] + drift);
    }
    free(pattern);
    free(noise);
    px->roi = *roi;
    px->bit_depth = bit_depth;
    px->seed = seed;
    px->pixels = n;
    px->pool_frames = frames;
    return 1;
}

void sim_pixels_render(const sim_pixels *px, int32 frame_nr, uint16_t *out)
{
    size_t n = px->pixels;
    unsigned k = (unsigned)((uint32_t)(frame_nr - 1) % px->pool_frames);
    memcpy(out, px->pool + (size_t)k * n, n * sizeof *out);
    for (size_t i = 0; i < 4 && i < n; ++i)
        out[i] = (uint16_t)(((uint32_t)frame_nr >> (8 * i)) & 0xFF);
}
