/*
 * Deterministic images: a smooth scene plus noise, reproducible from the seed,
 * with the frame number stamped into the first four pixels (one byte each,
 * least significant first) so a test can tell a lost, duplicated or
 * overwritten frame.  The scene is defined in sensor coordinates, so an ROI
 * crops it and binning averages it, as on a real sensor.
 *
 * Rendering one frame is two adds per pixel: scene[i] + noise[offset + i] +
 * drift, with the offset into a slightly longer noise table chosen by frame
 * number and a slow per-frame drift, so a time series of means is not flat.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define NOISE_SPAN 4099 /* prime, so consecutive frames get unrelated offsets */

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
    free(px->pattern);
    free(px->noise);
    memset(px, 0, sizeof *px);
}

int sim_pixels_prepare(sim_pixels *px, const rgn_type *roi, int16 bit_depth, uint64_t seed)
{
    if (px->pattern && memcmp(&px->roi, roi, sizeof *roi) == 0 && px->bit_depth == bit_depth
        && px->seed == seed)
        return 1; /* cached */
    sim_pixels_free(px);
    int w = (roi->s2 - roi->s1 + 1) / roi->sbin;
    int h = (roi->p2 - roi->p1 + 1) / roi->pbin;
    size_t n = (size_t)w * (size_t)h;
    px->pattern = malloc(n * sizeof *px->pattern);
    px->noise = malloc((n + NOISE_SPAN) * sizeof *px->noise);
    double *fx = malloc(sizeof(double) * (size_t)(2 * w + 2 * h));
    if (!px->pattern || !px->noise || !fx) {
        free(fx);
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
        uint16_t *row = px->pattern + (size_t)y * (size_t)w;
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
        px->noise[i] = (uint16_t)(sum * scale);
    }
    px->roi = *roi;
    px->bit_depth = bit_depth;
    px->seed = seed;
    px->pixels = n;
    return 1;
}

void sim_pixels_render(const sim_pixels *px, int32 frame_nr, uint16_t *out)
{
    size_t offset = ((uint64_t)(uint32_t)frame_nr * 2654435761ull) % NOISE_SPAN;
    const uint16_t *restrict scene = px->pattern;
    const uint16_t *restrict noise = px->noise + offset;
    size_t n = px->pixels;
    /* a slow "beam intensity" drift, up to 2% of full scale, so time series move */
    double full = (double)((1u << px->bit_depth) - 1u);
    uint16_t drift = (uint16_t)(0.01 * full * (1.0 + sin(2.0 * M_PI * frame_nr / 200.0)));
    for (size_t i = 0; i < n; ++i)
        out[i] = (uint16_t)(scene[i] + noise[i] + drift);
    for (size_t k = 0; k < 4 && k < n; ++k)
        out[k] = (uint16_t)(((uint32_t)frame_nr >> (8 * k)) & 0xFF);
}
