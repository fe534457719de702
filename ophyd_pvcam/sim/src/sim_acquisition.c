/*
 * Sequence and continuous acquisition.
 *
 * Each acquiring camera owns one generator thread that plays the sensor:
 * frame n begins (BOF) one frame period after frame n-1 and ends (EOF) an
 * exposure plus a readout after it began, so consecutive frames overlap the
 * way a rolling-shutter sCMOS does and the frame period is
 * max(exposure, readout).  Times come from CLOCK_MONOTONIC with absolute
 * deadlines, so pacing does not drift.
 *
 * The sensor never waits for the host: it copies each frame into the next
 * slot of the host's buffer on its schedule and queues the frame's events; a
 * second thread (the notifier) makes the BOF/EOF callbacks from that queue and
 * only then does the frame become the "latest" one the host can fetch.  A
 * callback held up (pvc's handler waits on a lock its poll holds while Python
 * takes the GIL back) delays only the callbacks: the sensor goes on, and a
 * frame whose slot it rewrote before the frame's callback came is skipped and
 * counted overwritten, the gap in frame numbers the host sees on a real
 * camera.  Callbacks are always made without the camera lock held: pvc's EOF
 * handler calls back into this library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define FIRST_FRAME_LATENCY_NS 100000ull /* from start (or trigger) to BOF */
#define NEVER UINT64_MAX
#define NO_CALLBACK_LIMIT INT32_MAX

/* A thread's camera and the acquisition it serves (read before the thread
 * first takes the lock, a stop may have come already). */
typedef struct {
    sim_camera *cam;
    uint64_t generation;
} thread_arg;

uint64_t sim_readout_ns(const sim_camera *cam, const rgn_type *roi)
{
    /* sCMOS bins digitally: every sensor row in the ROI is read. */
    uint64_t rows = (uint64_t)(roi->p2 - roi->p1 + 1);
    return rows * sim_current_speed(cam)->row_time_ns;
}

static int listed(const sim_enum_item *items, int count, int32 value)
{
    for (int i = 0; i < count; ++i)
        if (items[i].value == value)
            return 1;
    return 0;
}

static int needs_trigger(const sim_camera *cam)
{
    switch (cam->trigger_mode) {
    case EXT_TRIG_EDGE_RISING:
    case EXT_TRIG_SOFTWARE_EDGE:
        return 1;
    case EXT_TRIG_TRIG_FIRST:
    case EXT_TRIG_SOFTWARE_FIRST:
        return cam->frames_started == 0;
    default:
        return 0;
    }
}

static int is_software_mode(int32 mode)
{
    return mode == EXT_TRIG_SOFTWARE_EDGE || mode == EXT_TRIG_SOFTWARE_FIRST;
}

static FRAME_INFO frame_info(const sim_camera *cam, int32 nr, uint64_t bof_ns, uint64_t eof_ns)
{
    FRAME_INFO fi;
    memset(&fi, 0, sizeof fi);
    fi.FrameInfoGUID.f1 = 0x5053494D; /* "PSIM" */
    fi.hCam = (int16)cam->index;
    fi.FrameNr = nr;
    fi.TimeStampBOF = (long64)((bof_ns - cam->start_ns) / 100000ull);
    fi.TimeStamp = eof_ns ? (long64)((eof_ns - cam->start_ns) / 100000ull) : 0;
    fi.ReadoutTime = (int32)(cam->readout_ns / 100000ull);
    return fi;
}

/* ---- faults --------------------------------------------------------------- */

enum gate { GATE_OPEN, GATE_CLOSED, GATE_UNTIL };

static sim_fault_progress *progress_for(sim_camera *cam, const sim_fault *f)
{
    sim_fault_progress *empty = NULL;
    for (int i = 0; i < MAX_FAULTS; ++i) {
        sim_fault_progress *p = &cam->fault_progress[i];
        if (p->fault.serial == f->serial)
            return p;
        if (!p->fault.serial && !empty)
            empty = p;
    }
    if (empty) {
        memset(empty, 0, sizeof *empty);
        empty->fault = *f;
    }
    return empty;
}

/* Brings the camera's view of the fault table up to date: new faults are
 * armed, and a clear_faults() ends the ones still in effect. */
static void refresh_faults(sim_camera *cam)
{
    sim_fault table[MAX_FAULTS];
    uint64_t generation;
    int n = sim_faults_snapshot(table, &generation);
    for (int i = 0; i < MAX_FAULTS; ++i) {
        sim_fault_progress *p = &cam->fault_progress[i];
        if (!p->fault.serial || p->fault.generation == generation)
            continue;
        int pauses = p->fault.kind == FAULT_STALL || p->fault.kind == FAULT_BYTE_LIMIT;
        if (pauses && p->fired && !p->finished) {
            uint64_t now = sim_now_ns(); /* a cleared stall resumes, paced from now */
            if (cam->next_start_ns < now)
                cam->next_start_ns = now;
        }
        memset(p, 0, sizeof *p);
    }
    for (int i = 0; i < n; ++i)
        if (table[i].camera < 0 || table[i].camera == cam->index)
            progress_for(cam, &table[i]);
}

static int duration_over(const sim_fault_progress *p, uint64_t now)
{
    return p->fault.duration_s > 0
           && now >= p->fired_ns + (uint64_t)(p->fault.duration_s * 1e9);
}

static void fire(sim_fault_progress *p, uint64_t now)
{
    if (p->fired)
        return;
    p->fired = 1;
    p->fired_ns = now;
    sim_fault_consume(p->fault.serial);
}

/* Frames a fault lets start before it acts: after_frames, or for a byte
 * limit as many whole frames as fit in its bytes. */
static uint64_t frames_before(const sim_camera *cam, const sim_fault *f)
{
    if (f->kind == FAULT_BYTE_LIMIT)
        return cam->frame_bytes ? f->amount / cam->frame_bytes : 0;
    return f->after_frames;
}

/* May the next frame start, as far as faults are concerned? */
static enum gate fault_gate(sim_camera *cam, uint64_t now, uint64_t *until)
{
    refresh_faults(cam);
    enum gate gate = GATE_OPEN;
    for (int i = 0; i < MAX_FAULTS; ++i) {
        sim_fault_progress *p = &cam->fault_progress[i];
        int kind = p->fault.kind;
        if (!p->fault.serial || p->finished || kind == FAULT_DROP || kind == FAULT_PARAM_POLL
            || kind == FAULT_CALLBACK_REREGISTER)
            continue; /* these act elsewhere */
        if ((uint64_t)cam->frames_started < frames_before(cam, &p->fault))
            continue;
        switch (kind) {
        case FAULT_STALL:
        case FAULT_BYTE_LIMIT: /* frames stop; the status still claims to acquire */
            fire(p, now);
            if (duration_over(p, now)) {
                p->finished = 1; /* resume, paced from now */
                cam->next_start_ns = now;
                continue;
            }
            if (p->fault.duration_s > 0) {
                uint64_t end = p->fired_ns + (uint64_t)(p->fault.duration_s * 1e9);
                if (gate == GATE_OPEN || (gate == GATE_UNTIL && end < *until)) {
                    gate = GATE_UNTIL;
                    *until = end;
                }
            } else {
                gate = GATE_CLOSED;
            }
            break;
        case FAULT_READOUT_FAILURE:
        case FAULT_DISCONNECT:
            /* frame after_frames + 1 starts, and fails during its readout */
            if ((uint64_t)cam->frames_started > p->fault.after_frames)
                return GATE_CLOSED;
            break;
        }
    }
    return gate;
}

/* Does frame nr fail in readout (or lose the camera) instead of arriving? */
static int failed_by_fault(sim_camera *cam, int32 nr, uint64_t now)
{
    for (int i = 0; i < MAX_FAULTS; ++i) {
        sim_fault_progress *p = &cam->fault_progress[i];
        if (!p->fault.serial || p->finished || (uint64_t)nr <= p->fault.after_frames)
            continue;
        if (p->fault.kind == FAULT_READOUT_FAILURE) {
            fire(p, now);
            cam->status = READOUT_FAILED;
            return 1;
        }
        if (p->fault.kind == FAULT_DISCONNECT) {
            fire(p, now);
            cam->disconnected = 1;
            return 1;
        }
    }
    return 0;
}

/* Will failed_by_fault fail frame nr? (no side effects) */
static int fails(const sim_camera *cam, int32 nr)
{
    for (int i = 0; i < MAX_FAULTS; ++i) {
        const sim_fault_progress *p = &cam->fault_progress[i];
        if (p->fault.serial && !p->finished && (uint64_t)nr > p->fault.after_frames
            && (p->fault.kind == FAULT_READOUT_FAILURE || p->fault.kind == FAULT_DISCONNECT))
            return 1;
    }
    return 0;
}

/* Does frame nr still get its BOF/EOF callbacks?  After a double callback
 * registration (callback_reregister), frames beyond after_frames arrive in the
 * buffer without them, for the rest of the acquisition. */
static int callbacks_for(sim_camera *cam, int32 nr, uint64_t now)
{
    if (nr > cam->callback_limit)
        return 0;
    if (!cam->registered_twice_at_start)
        return 1;
    refresh_faults(cam);
    for (int i = 0; i < MAX_FAULTS; ++i) {
        sim_fault_progress *p = &cam->fault_progress[i];
        if (!p->fault.serial || p->fault.kind != FAULT_CALLBACK_REREGISTER
            || (uint64_t)nr <= p->fault.after_frames)
            continue;
        fire(p, now);
        if ((uint64_t)cam->callback_limit > p->fault.after_frames)
            cam->callback_limit = (int32)p->fault.after_frames;
    }
    return nr <= cam->callback_limit;
}

/* The stream dies (param_poll): no frame starts or arrives again, and the
 * status reads READOUT_NOT_ACTIVE until the acquisition is stopped. */
static void kill_stream(sim_camera *cam)
{
    cam->stream_dead = 1;
    cam->status = READOUT_NOT_ACTIVE;
    cam->inflight_count = 0;
    cam->pending_triggers = 0;
    cam->note_count = 0;
    pthread_cond_broadcast(&cam->wake);
    pthread_cond_broadcast(&cam->notify_wake);
}

void sim_param_access(sim_camera *cam, uns32 id)
{
    /* Counted from the first delivered frame of a continuous acquisition
     * until it is stopped; setup, start and sequences do not count. */
    if (!cam->acquiring || cam->is_sequence || cam->frames_delivered == 0)
        return;
    cam->param_calls_mid_stream++;
    cam->last_param_mid_stream = id;
    if (cam->stream_dead)
        return;
    refresh_faults(cam);
    for (int i = 0; i < MAX_FAULTS; ++i) {
        sim_fault_progress *p = &cam->fault_progress[i];
        if (!p->fault.serial || p->fault.kind != FAULT_PARAM_POLL || p->fired)
            continue;
        if (++p->calls >= p->fault.amount) {
            fire(p, sim_now_ns());
            kill_stream(cam);
        }
    }
}

static int dropped_by_fault(sim_camera *cam, int32 nr, uint64_t now)
{
    refresh_faults(cam);
    for (int i = 0; i < MAX_FAULTS; ++i) {
        sim_fault_progress *p = &cam->fault_progress[i];
        if (!p->fault.serial || p->finished || p->fault.kind != FAULT_DROP)
            continue;
        if ((uint64_t)nr <= p->fault.after_frames)
            continue;
        if (p->fired && duration_over(p, now)) {
            p->finished = 1;
            continue;
        }
        if (((uint64_t)nr - p->fault.after_frames) % p->fault.every == 0) {
            fire(p, now);
            return 1;
        }
    }
    return 0;
}

/* ---- the generator thread --------------------------------------------------- */

/* May a frame start?  Returns 1 with *at the time it may begin, or 0 with
 * *wake the time worth looking again (NEVER: wait to be signalled). */
static int next_start(sim_camera *cam, uint64_t now, uint64_t *at, uint64_t *wake)
{
    *wake = NEVER;
    if (cam->status == READOUT_FAILED || cam->disconnected || cam->stream_dead)
        return 0;
    if (cam->is_sequence && cam->frames_started >= cam->exp_total)
        return 0;
    enum gate gate = fault_gate(cam, now, wake);
    if (gate != GATE_OPEN) {
        if (gate == GATE_CLOSED)
            *wake = NEVER;
        return 0;
    }
    if (cam->inflight_count >= MAX_INFLIGHT)
        return 0;
    if (!cam->is_sequence && cam->buffer_mode == CIRC_NO_OVERWRITE
        && cam->in_buffer + (uns32)cam->inflight_count >= cam->slot_count) {
        cam->halted_for_buffer = 1; /* every slot holds a frame nobody released */
        return 0;
    }
    if (cam->halted_for_buffer) { /* a slot came free: resume from now */
        cam->halted_for_buffer = 0;
        if (cam->next_start_ns < now)
            cam->next_start_ns = now;
    }
    if (needs_trigger(cam) && cam->pending_triggers == 0)
        return 0;
    *at = cam->next_start_ns; /* for a trigger, set when it arrived */
    return 1;
}

/* The notifier thread's CPU clock reading at its last account; a callback's
 * own CPU is the host's, counted apart. */
static __thread uint64_t *notifier_cpu;

static void notify(sim_camera *cam, frame_callback cb, void *context, FRAME_INFO fi)
{
    uint64_t before = sim_thread_cpu_ns();
    if (notifier_cpu) {
        cam->stats.notifier_cpu_ns += before - *notifier_cpu;
    }
    pthread_mutex_unlock(&cam->lock);
    cb(&fi, context);
    uint64_t after = sim_thread_cpu_ns();
    pthread_mutex_lock(&cam->lock);
    cam->stats.callback_cpu_ns += after - before;
    if (notifier_cpu)
        *notifier_cpu = after;
}

/* Queues a frame event for the notifier.  A full queue drops its oldest
 * event: by then the sensor has rewritten that frame's slot (the queue holds
 * two events per buffer slot and more), so an EOF dropped is a frame
 * overwritten. */
static void push_note(sim_camera *cam, sim_note note)
{
    if (!cam->note_capacity)
        return;
    if (cam->note_count == cam->note_capacity) {
        sim_note old = cam->notes[cam->note_head];
        cam->note_head = (cam->note_head + 1) % cam->note_capacity;
        cam->note_count--;
        cam->stats.notes_discarded++;
        if (old.event == PL_CALLBACK_EOF)
            cam->stats.frames_overwritten++;
    }
    cam->notes[(cam->note_head + cam->note_count) % cam->note_capacity] = note;
    cam->note_count++;
    if (cam->note_count > cam->stats.max_backlog)
        cam->stats.max_backlog = cam->note_count;
    pthread_cond_broadcast(&cam->notify_wake);
}

/* The exposure of frame nr: the setup's, or with S.M.A.R.T. streaming the
 * next of its exposures, in a circle. */
static uint64_t exposure_of(const sim_camera *cam, int32 nr)
{
    if (!cam->smart_frames)
        return cam->exposure_ns;
    return cam->smart_ns[(uint32_t)(nr - 1) % cam->smart_frames];
}

static void begin_frame(sim_camera *cam, uint64_t due)
{
    /* Frames start on the sensor's schedule even when this thread runs late
     * (a slow consumer holding pvc's lock in a callback): the camera does not
     * wait for the host, so late frames arrive in a burst and an overrun shows
     * as overwritten or lost frames.  Only a stall or a halted buffer
     * restarts the schedule (see next_start). */
    uint64_t bof = due;
    if (needs_trigger(cam))
        cam->pending_triggers = 0;
    int32 nr = ++cam->frames_started;
    uint64_t exposure = exposure_of(cam, nr);
    uint64_t period = exposure > cam->readout_ns ? exposure : cam->readout_ns;
    cam->inflight[cam->inflight_count++] = (sim_inflight){
        .nr = nr, .bof_ns = bof, .eof_due_ns = bof + exposure + cam->readout_ns};
    cam->last_bof_ns = bof;
    cam->last_period_ns = period;
    cam->next_start_ns = bof + period;
    if (cam->on_bof)
        push_note(cam, (sim_note){.nr = nr, .event = PL_CALLBACK_BOF, .bof_ns = bof});
}

static int sequence_done(const sim_camera *cam)
{
    return cam->frames_delivered + cam->frames_dropped >= cam->exp_total;
}

/* The sensor's part of a frame's end: the pixels go into the next slot now,
 * whatever the host is doing; the notifier delivers it. */
static void finish_frame(sim_camera *cam)
{
    sim_inflight f = cam->inflight[0];
    memmove(&cam->inflight[0], &cam->inflight[1],
            (size_t)(--cam->inflight_count) * sizeof cam->inflight[0]);
    uint64_t now = sim_now_ns();
    uint64_t generation = cam->generation;
    cam->frames_generated_total++;
    cam->stats.frames_generated++;
    if (fails(cam, f.nr)) {
        /* the frames before a failure reach the host first, as they did */
        while (cam->note_count && cam->generation == generation)
            pthread_cond_wait(&cam->notify_wake, &cam->lock);
        if (cam->generation != generation)
            return;
    }
    if (failed_by_fault(cam, f.nr, now)) {
        cam->inflight_count = 0; /* whatever else was in flight is gone too */
        return;
    }
    if (dropped_by_fault(cam, f.nr, now)) {
        cam->frames_dropped++;
        if (cam->is_sequence && sequence_done(cam) && cam->status != READOUT_FAILED)
            cam->status = READOUT_COMPLETE;
        return;
    }
    uns32 slot = cam->is_sequence ? (uns32)cam->frames_written
                                  : (uns32)(cam->frames_written % cam->slot_count);
    cam->slot_nr[slot] = f.nr;
    cam->frames_written++;
    if (cam->buffer_mode == CIRC_NO_OVERWRITE)
        cam->in_buffer++;
    uns8 *dest = cam->buffer + (size_t)slot * cam->frame_bytes;
    pthread_mutex_unlock(&cam->lock);
    /* Outside the lock (8 MiB).  Headers first: a reader that checks the
     * header after copying the pixels can tell it was overwritten. */
    if (cam->pixel_offset)
        sim_metadata_write(cam, dest, f.nr, f.bof_ns, f.eof_due_ns);
    sim_pixels_render(&cam->pixels, f.nr, (uint16_t *)(dest + cam->pixel_offset));
    pthread_mutex_lock(&cam->lock);
    if (cam->generation != generation || cam->stream_dead)
        return;
    cam->stats.frames_written++;
    push_note(cam, (sim_note){.nr = f.nr, .event = PL_CALLBACK_EOF, .slot = slot,
                              .bof_ns = f.bof_ns, .eof_ns = f.eof_due_ns});
}

/* The notifier's part: the frame arrives for the host (unless the sensor has
 * rewritten its slot meanwhile), then its callback is made. */
static void deliver(sim_camera *cam, sim_note note)
{
    uint64_t now = sim_now_ns();
    if (note.event == PL_CALLBACK_BOF) {
        if (cam->on_bof && callbacks_for(cam, note.nr, now))
            notify(cam, cam->on_bof, cam->bof_context, frame_info(cam, note.nr, note.bof_ns, 0));
        return;
    }
    if (cam->slot_nr[note.slot] != note.nr) {
        cam->stats.frames_overwritten++;
        /* the sensor has rewritten this frame's slot, so it is a whole buffer ahead:
         * every frame delivered before this one is overwritten too.  None is held
         * until the next arrives (the oldest is counted back from the latest). */
        cam->held = 0;
        return;
    }
    FRAME_INFO fi = frame_info(cam, note.nr, note.bof_ns, note.eof_ns);
    cam->slot_info[note.slot] = fi;
    cam->latest_slot = note.slot;
    cam->frames_delivered++;
    if (!cam->is_sequence && note.slot == cam->slot_count - 1)
        cam->buffer_fills++;
    if (cam->held < cam->slot_count)
        cam->held++; /* in CIRC_OVERWRITE the oldest was just overwritten */
    /* a sequence reports READOUT_COMPLETE only once every frame is in */
    if (cam->status != READOUT_FAILED)
        cam->status = !cam->is_sequence ? FRAME_AVAILABLE
                      : sequence_done(cam) ? READOUT_COMPLETE
                                           : READOUT_IN_PROGRESS;
    if (cam->on_eof && callbacks_for(cam, note.nr, now))
        notify(cam, cam->on_eof, cam->eof_context, fi);
}

static void *notifier_main(void *arg)
{
    thread_arg a = *(thread_arg *)arg;
    free(arg);
    sim_camera *cam = a.cam;
    uint64_t generation = a.generation;
    pthread_mutex_lock(&cam->lock);
    uint64_t last = sim_thread_cpu_ns();
    notifier_cpu = &last;
    while (cam->generation == generation) {
        if (!cam->note_count) {
            pthread_cond_wait(&cam->notify_wake, &cam->lock);
            continue;
        }
        sim_note note = cam->notes[cam->note_head];
        cam->note_head = (cam->note_head + 1) % cam->note_capacity;
        cam->note_count--;
        deliver(cam, note);
        if (cam->generation != generation)
            break; /* stopped from a callback, or restarted since */
        if (!cam->note_count)
            pthread_cond_broadcast(&cam->notify_wake); /* a failing frame waits for this */
        uint64_t cpu = sim_thread_cpu_ns();
        cam->stats.notifier_cpu_ns += cpu - last;
        last = cpu;
    }
    notifier_cpu = NULL;
    pthread_mutex_unlock(&cam->lock);
    return NULL;
}

static void timed_wait(sim_camera *cam, uint64_t deadline)
{
    if (deadline == NEVER) {
        pthread_cond_wait(&cam->wake, &cam->lock);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
                          .tv_nsec = (long)(deadline % 1000000000ull)};
    pthread_cond_timedwait(&cam->wake, &cam->lock, &ts);
}

static void *generator_main(void *arg)
{
    thread_arg a = *(thread_arg *)arg;
    free(arg);
    sim_camera *cam = a.cam;
    uint64_t generation = a.generation;
    pthread_mutex_lock(&cam->lock);
    uint64_t last = sim_thread_cpu_ns();
    while (cam->generation == generation) {
        uint64_t now = sim_now_ns();
        if (cam->inflight_count > 0 && now >= cam->inflight[0].eof_due_ns) {
            finish_frame(cam);
            uint64_t cpu = sim_thread_cpu_ns();
            cam->stats.sensor_cpu_ns += cpu - last;
            last = cpu;
            continue;
        }
        uint64_t at = NEVER, wake = NEVER;
        if (next_start(cam, now, &at, &wake)) {
            if (now >= at) {
                begin_frame(cam, at);
                continue;
            }
            wake = at;
        }
        if (cam->inflight_count > 0 && cam->inflight[0].eof_due_ns < wake)
            wake = cam->inflight[0].eof_due_ns;
        timed_wait(cam, wake);
    }
    cam->stats.sensor_cpu_ns += sim_thread_cpu_ns() - last;
    pthread_mutex_unlock(&cam->lock);
    return NULL;
}

/* ---- stopping ------------------------------------------------------------- */

static void end_thread(sim_camera *cam, pthread_t thread)
{
    if (pthread_equal(thread, pthread_self())) {
        pthread_detach(thread); /* stopped from inside a callback */
    } else {
        pthread_mutex_unlock(&cam->lock);
        pthread_join(thread, NULL);
        pthread_mutex_lock(&cam->lock);
    }
}

void sim_acquisition_stop(sim_camera *cam)
{
    if (cam->thread_started || cam->notifier_started) {
        cam->stop_requested = 1;
        cam->generation++;
        pthread_cond_broadcast(&cam->wake);
        pthread_cond_broadcast(&cam->notify_wake);
        if (cam->thread_started) {
            cam->thread_started = 0;
            end_thread(cam, cam->thread);
        }
        if (cam->notifier_started) {
            cam->notifier_started = 0;
            end_thread(cam, cam->notifier);
        }
    }
    cam->note_count = 0;
    cam->in_buffer = 0;
    cam->acquiring = 0;
    cam->buffer = NULL;
    cam->status = READOUT_NOT_ACTIVE;
    cam->inflight_count = 0;
    cam->held = 0;
    cam->pending_triggers = 0;
    cam->halted_for_buffer = 0;
    cam->stream_dead = 0;
}

/* ---- setup and start -------------------------------------------------------- */

static rs_bool check_region(const rgn_type *r)
{
    if (r->s1 > r->s2 || r->s2 >= SENSOR_WIDTH || r->p1 > r->p2 || r->p2 >= SENSOR_HEIGHT)
        return sim_fail(ERR_OUT_OF_RANGE,
                        "ROI s1=%u s2=%u p1=%u p2=%u is outside the %dx%d sensor", r->s1,
                        r->s2, r->p1, r->p2, SENSOR_WIDTH, SENSOR_HEIGHT);
    if (r->sbin != r->pbin || (r->sbin != 1 && r->sbin != 2 && r->sbin != 4))
        return sim_fail(ERR_OUT_OF_RANGE, "Binning %ux%u is not offered (1x1, 2x2, 4x4)",
                        r->sbin, r->pbin);
    if ((r->s2 - r->s1 + 1) % r->sbin || (r->p2 - r->p1 + 1) % r->pbin)
        return sim_fail(ERR_OUT_OF_RANGE, "ROI size %ux%u is not a multiple of the binning %u",
                        r->s2 - r->s1 + 1, r->p2 - r->p1 + 1, r->sbin);
    return PV_OK;
}

static rs_bool setup(int16 hcam, int is_sequence, uns16 exp_total, uns16 rgn_total,
                     const rgn_type *rgn_array, int16 exp_mode, uns32 exposure_time,
                     uns32 *exp_bytes, int16 buffer_mode)
{
    if (!rgn_array || !exp_bytes)
        return sim_fail(ERR_INVALID_ARGUMENT, "Acquisition setup: null pointer");
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    rs_bool ok = PV_OK;
    uint64_t max_exposure = cam->exp_res == EXP_RES_ONE_MICROSEC ? 3600000000ull : 3600000ull;
    if (cam->acquiring)
        ok = sim_fail(ERR_ACQUISITION_RUNNING, "An acquisition is running; abort it first");
    else if (rgn_total != 1)
        ok = sim_fail(ERR_OUT_OF_RANGE, "%u regions requested; this camera supports 1",
                      rgn_total);
    else if (is_sequence && exp_total == 0)
        ok = sim_fail(ERR_OUT_OF_RANGE, "A sequence needs at least one exposure");
    else if (!is_sequence && buffer_mode != CIRC_OVERWRITE && buffer_mode != CIRC_NO_OVERWRITE)
        ok = sim_fail(ERR_CONFIGURATION_INVALID,
                      "Buffer mode %d is not a circular mode (CIRC_OVERWRITE=1, "
                      "CIRC_NO_OVERWRITE=2)", buffer_mode);
    else if (exposure_time > max_exposure)
        ok = sim_fail(ERR_OUT_OF_RANGE, "Exposure %u is above the maximum %llu %s",
                      exposure_time, (unsigned long long)max_exposure,
                      cam->exp_res == EXP_RES_ONE_MICROSEC ? "us" : "ms");
    else if (cam->smart_enabled && cam->smart_count && exposure_time == 0)
        ok = sim_fail(ERR_CONFIGURATION_INVALID,
                      "With S.M.A.R.T. streaming the setup's exposure must not be 0 "
                      "(its exposures replace it)");
    else
        ok = check_region(&rgn_array[0]);
    if (ok) {
        const rgn_type *r = &rgn_array[0];
        cam->roi = *r;
        cam->is_sequence = is_sequence;
        cam->exp_total = is_sequence ? exp_total : 0;
        cam->buffer_mode = is_sequence ? CIRC_NONE : buffer_mode;
        cam->exp_mode = exp_mode;
        cam->exp_time = exposure_time;
        /* The camera remembers the requested mode; start checks it. */
        cam->trigger_mode = exp_mode & TRIGGER_MASK;
        cam->expose_out_mode = exp_mode & EXPOSE_OUT_MASK;
        uint64_t unit_ns = cam->exp_res == EXP_RES_ONE_MICROSEC ? 1000ull : 1000000ull;
        cam->exposure_ns = (uint64_t)exposure_time * unit_ns;
        cam->smart_frames = cam->smart_enabled ? cam->smart_count : 0;
        for (int i = 0; i < cam->smart_frames; ++i)
            cam->smart_ns[i] = (uint64_t)cam->smart_values[i] * unit_ns;
        cam->readout_ns = sim_readout_ns(cam, r);
        cam->period_ns = cam->exposure_ns > cam->readout_ns ? cam->exposure_ns : cam->readout_ns;
        cam->pixel_offset = cam->metadata_enabled ? METADATA_BYTES : 0;
        cam->frame_bytes = cam->pixel_offset + (uns32)((r->s2 - r->s1 + 1) / r->sbin)
                                                   * (uns32)((r->p2 - r->p1 + 1) / r->pbin) * 2u;
        cam->setup_done = 1;
        *exp_bytes = is_sequence ? cam->frame_bytes * exp_total : cam->frame_bytes;
    }
    pthread_mutex_unlock(&cam->lock);
    return ok;
}

rs_bool pl_exp_setup_seq(int16 hcam, uns16 exp_total, uns16 rgn_total, const rgn_type *rgn_array,
                         int16 exp_mode, uns32 exposure_time, uns32 *exp_bytes)
{
    return setup(hcam, 1, exp_total, rgn_total, rgn_array, exp_mode, exposure_time, exp_bytes,
                 CIRC_NONE);
}

rs_bool pl_exp_setup_cont(int16 hcam, uns16 rgn_total, const rgn_type *rgn_array, int16 exp_mode,
                          uns32 exposure_time, uns32 *exp_bytes, int16 buffer_mode)
{
    return setup(hcam, 0, 0, rgn_total, rgn_array, exp_mode, exposure_time, exp_bytes,
                 buffer_mode);
}

static rs_bool unlisted_mode(const sim_camera *cam)
{
    char offered[160] = "";
    size_t used = 0;
    for (int i = 0; i < SIM_TRIGGER_MODE_COUNT && used < sizeof offered; ++i)
        used += (size_t)snprintf(offered + used, sizeof offered - used, "%s%s %d",
                                 i ? ", " : "", SIM_TRIGGER_MODES[i].name,
                                 SIM_TRIGGER_MODES[i].value);
    return sim_fail(ERR_CONFIGURATION_INVALID,
                    "Exposure mode %d is not offered; trigger modes are %s, OR'd with an "
                    "expose-out mode 0-3", cam->exp_mode, offered);
}

static rs_bool start(int16 hcam, int is_sequence, void *buffer, uns32 size)
{
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    rs_bool ok = PV_OK;
    if (cam->acquiring)
        ok = sim_fail(ERR_ACQUISITION_RUNNING, "An acquisition is already running");
    else if (!cam->setup_done || cam->is_sequence != is_sequence)
        ok = sim_fail(ERR_NOT_SET_UP, "Call pl_exp_setup_%s before starting",
                      is_sequence ? "seq" : "cont");
    else if (!listed(SIM_TRIGGER_MODES, SIM_TRIGGER_MODE_COUNT, cam->trigger_mode)
             || !listed(SIM_EXPOSE_OUT_MODES, SIM_EXPOSE_OUT_MODE_COUNT, cam->expose_out_mode))
        ok = unlisted_mode(cam);
    else if (!buffer)
        ok = sim_fail(ERR_INVALID_ARGUMENT, "Frame buffer is a null pointer");
    else if (!is_sequence && size < cam->frame_bytes)
        ok = sim_fail(ERR_BUFFER_TOO_SMALL, "Buffer of %u bytes cannot hold one %u-byte frame",
                      size, cam->frame_bytes);
    else if (!sim_pixels_prepare(&cam->pixels, &cam->roi, sim_current_gain(cam)->bit_depth,
                                 sim_seed()))
        ok = sim_fail(ERR_BUFFER_TOO_SMALL, "Out of memory preparing the image model");
    uns32 slots = is_sequence ? cam->exp_total : (ok ? size / cam->frame_bytes : 0);
    uns32 notes = 2 * slots + 2 * MAX_INFLIGHT + 16;
    FRAME_INFO *info = ok ? calloc(slots, sizeof *info) : NULL;
    int32 *slot_nr = ok ? calloc(slots, sizeof *slot_nr) : NULL;
    sim_note *note_ring = ok ? calloc(notes, sizeof *note_ring) : NULL;
    if (ok && (!info || !slot_nr || !note_ring)) {
        free(info);
        free(slot_nr);
        free(note_ring);
        ok = sim_fail(ERR_BUFFER_TOO_SMALL, "Out of memory for %u frame records", slots);
    }
    if (ok) {
        free(cam->slot_info);
        free(cam->slot_nr);
        free(cam->notes);
        cam->slot_info = info;
        cam->slot_nr = slot_nr;
        cam->notes = note_ring;
        cam->note_capacity = notes;
        cam->note_head = cam->note_count = 0;
        cam->frames_written = 0;
        cam->in_buffer = 0;
        cam->generation++;
        cam->slot_count = slots;
        cam->buffer = buffer;
        cam->status = EXPOSURE_IN_PROGRESS;
        cam->start_ns = sim_now_ns();
        cam->next_start_ns = cam->start_ns + FIRST_FRAME_LATENCY_NS;
        cam->frames_started = 0;
        cam->frames_delivered = 0;
        cam->frames_dropped = 0;
        cam->latest_slot = 0;
        cam->held = 0;
        cam->buffer_fills = 0;
        cam->inflight_count = 0;
        cam->pending_triggers = 0;
        cam->halted_for_buffer = 0;
        cam->stop_requested = 0;
        cam->stream_dead = 0;
        cam->registered_twice_at_start =
            cam->registered_twice[PL_CALLBACK_BOF] || cam->registered_twice[PL_CALLBACK_EOF];
        cam->callback_limit = NO_CALLBACK_LIMIT;
        memset(cam->fault_progress, 0, sizeof cam->fault_progress);
        cam->acquiring = 1;
        thread_arg *for_notifier = malloc(sizeof *for_notifier);
        thread_arg *for_sensor = malloc(sizeof *for_sensor);
        if (for_notifier)
            *for_notifier = (thread_arg){cam, cam->generation};
        if (for_sensor)
            *for_sensor = (thread_arg){cam, cam->generation};
        if (!for_notifier || !for_sensor
            || pthread_create(&cam->notifier, NULL, notifier_main, for_notifier) != 0) {
            free(for_notifier);
            free(for_sensor);
            cam->acquiring = 0;
            cam->status = READOUT_NOT_ACTIVE;
            ok = sim_fail(ERR_INVALID_ARGUMENT, "Could not start the callback thread");
        } else if ((cam->notifier_started = 1),
                   pthread_create(&cam->thread, NULL, generator_main, for_sensor) != 0) {
            free(for_sensor);
            sim_acquisition_stop(cam);
            ok = sim_fail(ERR_INVALID_ARGUMENT, "Could not start the acquisition thread");
        } else {
            cam->thread_started = 1;
        }
    }
    pthread_mutex_unlock(&cam->lock);
    return ok;
}

rs_bool pl_exp_start_seq(int16 hcam, void *pixel_stream)
{
    return start(hcam, 1, pixel_stream, 0);
}

rs_bool pl_exp_start_cont(int16 hcam, void *pixel_stream, uns32 size)
{
    return start(hcam, 0, pixel_stream, size);
}

/* ---- status and frames ------------------------------------------------------ */

static rs_bool status(int16 hcam, int16 *out_status, uns32 *bytes, uns32 *buffer_cnt)
{
    if (!out_status)
        return sim_fail(ERR_INVALID_ARGUMENT, "Status query: null pointer");
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    *out_status = cam->status;
    if (bytes) {
        uint64_t arrived = cam->frames_delivered * (uint64_t)cam->frame_bytes;
        uint64_t capacity = (uint64_t)cam->slot_count * cam->frame_bytes;
        *bytes = (uns32)(cam->is_sequence || !capacity ? arrived : arrived % capacity);
    }
    if (buffer_cnt)
        *buffer_cnt = cam->buffer_fills;
    pthread_mutex_unlock(&cam->lock);
    return PV_OK;
}

rs_bool pl_exp_check_status(int16 hcam, int16 *out_status, uns32 *bytes_arrived)
{
    return status(hcam, out_status, bytes_arrived, NULL);
}

rs_bool pl_exp_check_cont_status(int16 hcam, int16 *out_status, uns32 *bytes_arrived,
                                 uns32 *buffer_cnt)
{
    return status(hcam, out_status, bytes_arrived, buffer_cnt);
}

static rs_bool get_frame(int16 hcam, int oldest, void **frame, FRAME_INFO *info)
{
    if (!frame)
        return sim_fail(ERR_INVALID_ARGUMENT, "Frame query: null pointer");
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    rs_bool ok = PV_OK;
    if (!cam->acquiring || !cam->buffer)
        ok = sim_fail(ERR_NOT_ACQUIRING, "No acquisition is running");
    else if (cam->held == 0)
        ok = sim_fail(ERR_NO_FRAME, "No frame is available yet");
    if (ok) {
        uns32 slot = cam->latest_slot;
        if (oldest)
            slot = (cam->latest_slot + cam->slot_count - (cam->held - 1)) % cam->slot_count;
        *frame = cam->buffer + (size_t)slot * cam->frame_bytes;
        if (info)
            *info = cam->slot_info[slot];
    }
    pthread_mutex_unlock(&cam->lock);
    return ok;
}

rs_bool pl_exp_get_latest_frame_ex(int16 hcam, void **frame, FRAME_INFO *info)
{
    return get_frame(hcam, 0, frame, info);
}

rs_bool pl_exp_get_oldest_frame_ex(int16 hcam, void **frame, FRAME_INFO *info)
{
    return get_frame(hcam, 1, frame, info);
}

rs_bool pl_exp_get_latest_frame(int16 hcam, void **frame)
{
    return get_frame(hcam, 0, frame, NULL);
}

rs_bool pl_exp_get_oldest_frame(int16 hcam, void **frame)
{
    return get_frame(hcam, 1, frame, NULL);
}

rs_bool pl_exp_unlock_oldest_frame(int16 hcam)
{
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    rs_bool ok = PV_OK;
    if (!cam->acquiring)
        ok = sim_fail(ERR_NOT_ACQUIRING, "No acquisition is running");
    else if (cam->held == 0)
        ok = sim_fail(ERR_NO_FRAME, "No locked frame to release");
    else {
        cam->held--;
        if (cam->in_buffer)
            cam->in_buffer--;
        pthread_cond_broadcast(&cam->wake); /* a halted buffer may resume */
    }
    pthread_mutex_unlock(&cam->lock);
    return ok;
}

/* ---- stopping and triggers ------------------------------------------------ */

rs_bool pl_exp_abort(int16 hcam, int16 cam_state)
{
    (void)cam_state;
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    sim_acquisition_stop(cam);
    pthread_mutex_unlock(&cam->lock);
    return PV_OK;
}

rs_bool pl_exp_stop_cont(int16 hcam, int16 cam_state)
{
    return pl_exp_abort(hcam, cam_state);
}

rs_bool pl_exp_finish_seq(int16 hcam, void *pixel_stream, int16 hbuf)
{
    (void)pixel_stream;
    (void)hbuf;
    return pl_exp_abort(hcam, 0);
}

static int accept_trigger(sim_camera *cam)
{
    if (cam->stream_dead)
        return 0;
    if (!needs_trigger(cam) || cam->pending_triggers > 0 || cam->inflight_count > 0)
        return 0; /* busy, or not waiting for a trigger: ignored, as a camera would */
    cam->pending_triggers = 1;
    uint64_t now = sim_now_ns() + FIRST_FRAME_LATENCY_NS;
    uint64_t ready = cam->frames_started ? cam->last_bof_ns + cam->last_period_ns : 0;
    cam->next_start_ns = now > ready ? now : ready;
    pthread_cond_broadcast(&cam->wake);
    return 1;
}

rs_bool pl_exp_trigger(int16 hcam, uns32 *flags, uns32 value)
{
    (void)value;
    if (!flags)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_exp_trigger: null pointer");
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    rs_bool ok = PV_OK;
    if (!cam->acquiring)
        ok = sim_fail(ERR_NOT_ACQUIRING, "No acquisition is running");
    else if (cam->stream_dead)
        ok = sim_fail(ERR_NOT_ACQUIRING,
                      "The acquisition is no longer active (status READOUT_NOT_ACTIVE); "
                      "stop and restart it");
    else if (!is_software_mode(cam->trigger_mode))
        ok = sim_fail(ERR_CONFIGURATION_INVALID,
                      "Software triggers need a Software Trigger exposure mode (now %d)",
                      cam->trigger_mode);
    else
        *flags = accept_trigger(cam) ? PL_SW_TRIG_STATUS_TRIGGERED : PL_SW_TRIG_STATUS_IGNORED;
    pthread_mutex_unlock(&cam->lock);
    return ok;
}

/* An edge on the camera's trigger input.  Returns 1 if it started (or
 * armed) an exposure, 0 if the camera ignored it, -1 if there is no such
 * acquiring camera in an external trigger mode. */
int pvsim_fire_edge(int camera)
{
    sim_camera *cam = sim_camera_at(camera);
    if (!cam || camera >= sim_camera_total())
        return -1;
    pthread_mutex_lock(&cam->lock);
    int result = -1;
    if (cam->acquiring && (cam->trigger_mode == EXT_TRIG_EDGE_RISING
                           || cam->trigger_mode == EXT_TRIG_TRIG_FIRST))
        result = accept_trigger(cam);
    pthread_mutex_unlock(&cam->lock);
    return result;
}

/* Frames lost inside the camera by a "drop" fault in the running acquisition. */
uint64_t pvsim_frames_dropped(int camera)
{
    sim_camera *cam = sim_camera_at(camera);
    if (!cam)
        return 0;
    pthread_mutex_lock(&cam->lock);
    uint64_t n = cam->frames_dropped;
    pthread_mutex_unlock(&cam->lock);
    return n;
}

/* Is a continuous CIRC_NO_OVERWRITE acquisition halted because no slot is free? */
int pvsim_buffer_full(int camera)
{
    sim_camera *cam = sim_camera_at(camera);
    if (!cam)
        return 0;
    pthread_mutex_lock(&cam->lock);
    int halted = cam->halted_for_buffer;
    pthread_mutex_unlock(&cam->lock);
    return halted;
}

/* What the simulator itself cost and what overran, over the life of one
 * camera or, for camera < 0, of all of them summed (max_backlog: the most). */
void pvsim_stats(int camera, pvsim_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < MAX_CAMERAS; ++i) {
        if (camera >= 0 && camera != i)
            continue;
        sim_camera *cam = sim_camera_at(i);
        if (!cam)
            continue;
        pthread_mutex_lock(&cam->lock);
        pvsim_stats_t s = cam->stats;
        pthread_mutex_unlock(&cam->lock);
        out->frames_generated += s.frames_generated;
        out->frames_written += s.frames_written;
        out->frames_overwritten += s.frames_overwritten;
        out->notes_discarded += s.notes_discarded;
        out->sensor_cpu_ns += s.sensor_cpu_ns;
        out->notifier_cpu_ns += s.notifier_cpu_ns;
        out->callback_cpu_ns += s.callback_cpu_ns;
        if (s.max_backlog > out->max_backlog)
            out->max_backlog = s.max_backlog;
    }
}
