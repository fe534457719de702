/*
 * Library lifetime, errors, camera discovery, open/close and callbacks.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define SIM_PVCAM_VERSION 0x0310 /* reported as 3.1.0 */

static pthread_mutex_t g_lib_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_initialized;
static int g_camera_total;
static uint64_t g_seed = 20260111;
static sim_camera g_cameras[MAX_CAMERAS];
static int g_cameras_constructed;

/* The error state is per thread, so a failure in one thread is reported
 * with its own text even while another thread is calling in. */
static __thread int16 t_error_code;
static __thread char t_error_text[ERROR_MSG_LEN];

static const char *error_name(int code)
{
    switch (code) {
    case ERR_NONE: return "PL_ERR_NONE";
    case ERR_INVALID_ARGUMENT: return "PL_ERR_INVALID_ARGUMENT";
    case ERR_NOT_AVAILABLE: return "PL_ERR_PARAM_NOT_AVAILABLE";
    case ERR_READ_ONLY: return "PL_ERR_PARAM_READ_ONLY";
    case ERR_OUT_OF_RANGE: return "PL_ERR_VALUE_OUT_OF_RANGE";
    case ERR_NO_SUCH_CAMERA: return "PL_ERR_CAMERA_NOT_FOUND";
    case ERR_CAMERA_ALREADY_OPEN: return "PL_ERR_CAMERA_ALREADY_OPEN";
    case ERR_CAMERA_NOT_OPEN: return "PL_ERR_CAMERA_NOT_OPEN";
    case ERR_ACQUISITION_RUNNING: return "PL_ERR_ACQUISITION_IN_PROGRESS";
    case ERR_NOT_SET_UP: return "PL_ERR_ACQUISITION_NOT_SET_UP";
    case ERR_NO_FRAME: return "PL_ERR_NO_FRAME_AVAILABLE";
    case ERR_BUFFER_TOO_SMALL: return "PL_ERR_BUFFER_TOO_SMALL";
    case ERR_NOT_ACQUIRING: return "PL_ERR_NOT_ACQUIRING";
    case ERR_CAMERA_DISCONNECTED: return "PL_ERR_CAMERA_DISCONNECTED";
    case ERR_ALREADY_INITIALIZED: return "PL_ERR_LIBRARY_ALREADY_INITIALIZED";
    case ERR_NOT_INITIALIZED: return "PL_ERR_LIBRARY_NOT_INITIALIZED";
    case ERR_CONFIGURATION_INVALID: return "PL_ERR_CONFIGURATION_INVALID";
    default: return "PL_ERR_UNKNOWN";
    }
}

rs_bool sim_fail(enum sim_error code, const char *fmt, ...)
{
    char detail[ERROR_MSG_LEN - 64]; /* room for the code and name */
    va_list args;
    va_start(args, fmt);
    vsnprintf(detail, sizeof detail, fmt, args);
    va_end(args);
    /* pvc hands this text to PyErr_Format as a format string. */
    for (char *p = detail; *p; ++p)
        if (*p == '%')
            *p = ' ';
    t_error_code = (int16)code;
    snprintf(t_error_text, sizeof t_error_text, "%s (%s, code %d)", detail,
             error_name(code), (int)code);
    return PV_FAIL;
}

void sim_clear_error(void)
{
    t_error_code = ERR_NONE;
    t_error_text[0] = '\0';
}

int16 pl_error_code(void)
{
    return t_error_code;
}

rs_bool pl_error_message(int16 err_code, char *msg)
{
    if (!msg)
        return PV_FAIL;
    if (err_code == t_error_code && t_error_text[0])
        snprintf(msg, ERROR_MSG_LEN, "%s", t_error_text);
    else if (err_code == ERR_NONE)
        snprintf(msg, ERROR_MSG_LEN, "No error");
    else
        snprintf(msg, ERROR_MSG_LEN, "%s (code %d)", error_name(err_code), (int)err_code);
    return PV_OK;
}

uint64_t sim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sim_seed(void)
{
    return g_seed;
}

int sim_is_initialized(void)
{
    return g_initialized;
}

int sim_camera_total(void)
{
    return g_camera_total;
}

sim_camera *sim_camera_at(int index)
{
    if (index < 0 || index >= MAX_CAMERAS)
        return NULL;
    return &g_cameras[index];
}

double sim_temperature(const sim_camera *cam, uint64_t now_ns)
{
    /* First-order approach to the setpoint; the fan sets the time constant. */
    static const double tau_s[] = {12.0, 20.0, 30.0, 90.0};
    int fan = (cam->fan_speed >= 0 && cam->fan_speed <= 3) ? cam->fan_speed : 0;
    double target = cam->temp_setpoint / 100.0;
    double elapsed = (double)(now_ns - cam->temp_since_ns) / 1e9;
    return target + (cam->temp_start - target) * exp(-elapsed / tau_s[fan]);
}

static void construct_cameras(void)
{
    if (g_cameras_constructed)
        return;
    for (int i = 0; i < MAX_CAMERAS; ++i) {
        sim_camera *cam = &g_cameras[i];
        memset(cam, 0, sizeof *cam);
        cam->index = i;
        pthread_mutex_init(&cam->lock, NULL);
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&cam->wake, &attr);
        pthread_condattr_destroy(&attr);
        pthread_cond_init(&cam->notify_wake, NULL);
    }
    g_cameras_constructed = 1;
}

static long env_long(const char *name, long fallback, long lo, long hi)
{
    const char *text = getenv(name);
    if (!text || !*text)
        return fallback;
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (*end || value < lo || value > hi) {
        fprintf(stderr, "pvcam-sim: ignoring %s=%s (expected %ld..%ld)\n", name, text, lo, hi);
        return fallback;
    }
    return value;
}

rs_bool pl_pvcam_init(void)
{
    pthread_mutex_lock(&g_lib_lock);
    if (g_initialized) {
        pthread_mutex_unlock(&g_lib_lock);
        return sim_fail(ERR_ALREADY_INITIALIZED, "PVCAM is already initialized in this process");
    }
    construct_cameras();
    g_camera_total = (int)env_long("OPHYD_PVCAM_SIM_CAMERAS", 1, 0, MAX_CAMERAS);
    const char *seed_text = getenv("OPHYD_PVCAM_SIM_SEED");
    if (seed_text && *seed_text)
        g_seed = strtoull(seed_text, NULL, 10);
    uint64_t now = sim_now_ns();
    for (int i = 0; i < g_camera_total; ++i) {
        sim_camera *cam = &g_cameras[i];
        pthread_mutex_lock(&cam->lock);
        snprintf(cam->name, sizeof cam->name, "pvcamSim_%d", i);
        snprintf(cam->serial, sizeof cam->serial, "SIM-PBSI-%04d", 1001 + i);
        cam->open = 0;
        cam->disconnected = 0;
        sim_params_reset(cam);
        cam->temp_start = 25.0; /* warm at power-up */
        cam->temp_since_ns = now;
        pthread_mutex_unlock(&cam->lock);
    }
    g_initialized = 1;
    pthread_mutex_unlock(&g_lib_lock);
    sim_clear_error();
    return PV_OK;
}

static void close_camera_locked(sim_camera *cam)
{
    sim_acquisition_stop(cam);
    cam->on_bof = cam->on_eof = NULL;
    cam->registered_twice[PL_CALLBACK_BOF] = cam->registered_twice[PL_CALLBACK_EOF] = 0;
    cam->open = 0;
    cam->disconnected = 0;
}

rs_bool pl_pvcam_uninit(void)
{
    pthread_mutex_lock(&g_lib_lock);
    if (!g_initialized) {
        pthread_mutex_unlock(&g_lib_lock);
        return sim_fail(ERR_NOT_INITIALIZED, "PVCAM is not initialized");
    }
    for (int i = 0; i < g_camera_total; ++i) {
        sim_camera *cam = &g_cameras[i];
        pthread_mutex_lock(&cam->lock);
        if (cam->open)
            close_camera_locked(cam);
        sim_pixels_free(&cam->pixels);
        free(cam->slot_info);
        cam->slot_info = NULL;
        free(cam->slot_nr);
        cam->slot_nr = NULL;
        free(cam->notes);
        cam->notes = NULL;
        cam->note_capacity = 0;
        pthread_mutex_unlock(&cam->lock);
    }
    g_initialized = 0;
    pthread_mutex_unlock(&g_lib_lock);
    sim_clear_error();
    return PV_OK;
}

rs_bool pl_pvcam_get_ver(uns16 *version)
{
    if (!version)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_pvcam_get_ver: null pointer");
    *version = SIM_PVCAM_VERSION;
    return PV_OK;
}

rs_bool pl_cam_get_total(int16 *total)
{
    if (!g_initialized)
        return sim_fail(ERR_NOT_INITIALIZED, "PVCAM is not initialized");
    if (!total)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_cam_get_total: null pointer");
    *total = (int16)g_camera_total;
    return PV_OK;
}

rs_bool pl_cam_get_name(int16 index, char *name)
{
    if (!g_initialized)
        return sim_fail(ERR_NOT_INITIALIZED, "PVCAM is not initialized");
    if (!name)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_cam_get_name: null pointer");
    if (index < 0 || index >= g_camera_total)
        return sim_fail(ERR_NO_SUCH_CAMERA, "No camera at index %d (%d attached)", index,
                        g_camera_total);
    snprintf(name, CAM_NAME_LEN, "%s", g_cameras[index].name);
    return PV_OK;
}

rs_bool pl_cam_open(char *name, int16 *hcam, int16 mode)
{
    (void)mode;
    if (!g_initialized)
        return sim_fail(ERR_NOT_INITIALIZED, "PVCAM is not initialized");
    if (!name || !hcam)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_cam_open: null pointer");
    for (int i = 0; i < g_camera_total; ++i) {
        sim_camera *cam = &g_cameras[i];
        if (strncmp(cam->name, name, CAM_NAME_LEN) != 0)
            continue;
        pthread_mutex_lock(&cam->lock);
        if (cam->open) {
            pthread_mutex_unlock(&cam->lock);
            return sim_fail(ERR_CAMERA_ALREADY_OPEN,
                            "Camera %s is already open (in use by another handle)", name);
        }
        double warm = sim_temperature(cam, sim_now_ns());
        sim_params_reset(cam);
        cam->temp_start = warm;
        cam->temp_since_ns = sim_now_ns();
        cam->open = 1;
        cam->disconnected = 0;
        cam->open_ns = sim_now_ns();
        pthread_mutex_unlock(&cam->lock);
        *hcam = (int16)i;
        return PV_OK;
    }
    return sim_fail(ERR_NO_SUCH_CAMERA, "No camera named '%s'", name);
}

rs_bool pl_cam_close(int16 hcam)
{
    if (!g_initialized)
        return sim_fail(ERR_NOT_INITIALIZED, "PVCAM is not initialized");
    sim_camera *cam = sim_camera_at(hcam);
    if (!cam || hcam >= g_camera_total)
        return sim_fail(ERR_INVALID_ARGUMENT, "Invalid camera handle %d", hcam);
    pthread_mutex_lock(&cam->lock);
    if (!cam->open) {
        pthread_mutex_unlock(&cam->lock);
        return sim_fail(ERR_CAMERA_NOT_OPEN, "Camera handle %d is not open", hcam);
    }
    close_camera_locked(cam);
    pthread_mutex_unlock(&cam->lock);
    return PV_OK;
}

sim_camera *sim_lock_camera(int16 hcam)
{
    if (!g_initialized) {
        sim_fail(ERR_NOT_INITIALIZED, "PVCAM is not initialized");
        return NULL;
    }
    sim_camera *cam = sim_camera_at(hcam);
    if (!cam || hcam >= g_camera_total) {
        sim_fail(ERR_INVALID_ARGUMENT, "Invalid camera handle %d", hcam);
        return NULL;
    }
    pthread_mutex_lock(&cam->lock);
    if (!cam->open) {
        pthread_mutex_unlock(&cam->lock);
        sim_fail(ERR_CAMERA_NOT_OPEN, "Camera handle %d is not open", hcam);
        return NULL;
    }
    if (cam->disconnected) {
        pthread_mutex_unlock(&cam->lock);
        sim_fail(ERR_CAMERA_DISCONNECTED,
                 "Camera %s is disconnected; close and reopen it", cam->name);
        return NULL;
    }
    return cam;
}

rs_bool pl_cam_register_callback_ex3(int16 hcam, int32 event, void *callback, void *context)
{
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    rs_bool ok = PV_OK;
    /* Registering over a registered callback replaces it; the simulator
     * remembers it for the callback_reregister fault. */
    if (event == PL_CALLBACK_BOF) {
        cam->registered_twice[event] |= cam->on_bof != NULL;
        cam->on_bof = (frame_callback)callback;
        cam->bof_context = context;
    } else if (event == PL_CALLBACK_EOF) {
        cam->registered_twice[event] |= cam->on_eof != NULL;
        cam->on_eof = (frame_callback)callback;
        cam->eof_context = context;
    } else {
        ok = sim_fail(ERR_INVALID_ARGUMENT, "Callback event %d is not supported", event);
    }
    pthread_mutex_unlock(&cam->lock);
    return ok;
}

rs_bool pl_cam_deregister_callback(int16 hcam, int32 event)
{
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    if (event == PL_CALLBACK_BOF)
        cam->on_bof = NULL;
    else if (event == PL_CALLBACK_EOF)
        cam->on_eof = NULL;
    if (event == PL_CALLBACK_BOF || event == PL_CALLBACK_EOF)
        cam->registered_twice[event] = 0;
    pthread_mutex_unlock(&cam->lock);
    return PV_OK;
}

rs_bool pl_pp_reset(int16 hcam)
{
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    pthread_mutex_unlock(&cam->lock); /* no post-processing features modelled */
    return PV_OK;
}

rs_bool pl_create_frame_info_struct(FRAME_INFO **info)
{
    if (!info)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_create_frame_info_struct: null pointer");
    *info = calloc(1, sizeof **info);
    return *info ? PV_OK : sim_fail(ERR_INVALID_ARGUMENT, "Out of memory");
}

rs_bool pl_release_frame_info_struct(FRAME_INFO *info)
{
    free(info);
    return PV_OK;
}

/* ---- simulator control, used by ophyd_pvcam.sim via ctypes -------------- */

void pvsim_set_seed(uint64_t seed)
{
    g_seed = seed;
}

uint64_t pvsim_frames_generated(int camera)
{
    uint64_t total = 0;
    construct_cameras();
    for (int i = 0; i < MAX_CAMERAS; ++i) {
        if (camera >= 0 && camera != i)
            continue;
        pthread_mutex_lock(&g_cameras[i].lock);
        total += g_cameras[i].frames_generated_total;
        pthread_mutex_unlock(&g_cameras[i].lock);
    }
    return total;
}

/* Parameter calls made while a continuous acquisition streamed (from its
 * first frame until it stopped), on one camera or all (camera < 0). */
uint64_t pvsim_param_calls_mid_stream(int camera)
{
    uint64_t total = 0;
    construct_cameras();
    for (int i = 0; i < MAX_CAMERAS; ++i) {
        if (camera >= 0 && camera != i)
            continue;
        pthread_mutex_lock(&g_cameras[i].lock);
        total += g_cameras[i].param_calls_mid_stream;
        pthread_mutex_unlock(&g_cameras[i].lock);
    }
    return total;
}

/* The parameter id of the last such call on a camera (0: none yet). */
uint32_t pvsim_last_param_mid_stream(int camera)
{
    sim_camera *cam = sim_camera_at(camera);
    if (!cam)
        return 0;
    construct_cameras();
    pthread_mutex_lock(&cam->lock);
    uint32_t id = cam->last_param_mid_stream;
    pthread_mutex_unlock(&cam->lock);
    return id;
}

const char *pvsim_identity(void)
{
    return "ophyd-pvcam simulated PVCAM (Prime BSI model)";
}

void sim_wake_all_cameras(void)
{
    if (!g_cameras_constructed)
        return;
    for (int i = 0; i < MAX_CAMERAS; ++i) {
        pthread_mutex_lock(&g_cameras[i].lock);
        pthread_cond_broadcast(&g_cameras[i].wake);
        pthread_mutex_unlock(&g_cameras[i].lock);
    }
}
