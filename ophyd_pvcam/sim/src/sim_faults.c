/*
 * The table of injected faults.  Cameras take a snapshot when they decide
 * whether to start the next frame, so a fault injected mid-acquisition
 * applies to the running acquisition too (counting from its start).
 */
#include <string.h>

#include "sim.h"

static pthread_mutex_t g_fault_lock = PTHREAD_MUTEX_INITIALIZER;
static sim_fault g_faults[MAX_FAULTS];
static int g_fault_count;
static uint64_t g_next_serial = 1;
static uint64_t g_generation = 1;

int sim_faults_snapshot(sim_fault out[MAX_FAULTS], uint64_t *generation)
{
    pthread_mutex_lock(&g_fault_lock);
    int n = g_fault_count;
    memcpy(out, g_faults, (size_t)n * sizeof *out);
    *generation = g_generation;
    pthread_mutex_unlock(&g_fault_lock);
    return n;
}

void sim_fault_consume(uint64_t serial)
{
    pthread_mutex_lock(&g_fault_lock);
    for (int i = 0; i < g_fault_count; ++i) {
        if (g_faults[i].serial != serial || g_faults[i].times_left < 0)
            continue;
        if (--g_faults[i].times_left == 0) {
            g_faults[i] = g_faults[g_fault_count - 1];
            --g_fault_count;
        }
        break;
    }
    pthread_mutex_unlock(&g_fault_lock);
}

/* Returns the fault's serial number, or 0 if it was refused.  amount is the
 * parameter call that fires a param_poll fault, or the bytes after which a
 * byte_limit fault stops frames. */
uint64_t pvsim_add_fault(int kind, int camera, uint64_t after_frames, uint64_t every,
                         uint64_t amount, double duration_s, int times)
{
    if (kind < FAULT_STALL || kind > FAULT_KIND_LAST || times == 0)
        return 0;
    if (kind == FAULT_DROP && every == 0)
        return 0;
    if ((kind == FAULT_PARAM_POLL || kind == FAULT_BYTE_LIMIT) && amount == 0)
        return 0;
    pthread_mutex_lock(&g_fault_lock);
    uint64_t serial = 0;
    if (g_fault_count < MAX_FAULTS) {
        serial = g_next_serial++;
        g_faults[g_fault_count++] = (sim_fault){
            .serial = serial,
            .kind = kind,
            .camera = camera,
            .after_frames = after_frames,
            .every = every,
            .amount = amount,
            .duration_s = duration_s,
            .times_left = times,
            .generation = g_generation,
        };
    }
    pthread_mutex_unlock(&g_fault_lock);
    sim_wake_all_cameras();
    return serial;
}

/* Removes every fault; faults in effect end (a stall or byte limit resumes),
 * but a camera that already failed, vanished, lost its stream (param_poll) or
 * its callbacks (callback_reregister) stays that way until restarted/reopened. */
void pvsim_clear_faults(void)
{
    pthread_mutex_lock(&g_fault_lock);
    g_fault_count = 0;
    ++g_generation;
    pthread_mutex_unlock(&g_fault_lock);
    sim_wake_all_cameras();
}

int pvsim_fault_count(void)
{
    pthread_mutex_lock(&g_fault_lock);
    int n = g_fault_count;
    pthread_mutex_unlock(&g_fault_lock);
    return n;
}
