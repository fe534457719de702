/*
 * Simulated PVCAM SDK: shared types and internal interfaces.
 *
 * The library exports the pl_* functions that pyvcam's pvc extension imports
 * (see pvcam_sim.map) plus a small pvsim_* control API used by
 * ophyd_pvcam.sim through ctypes.  Struct layouts and constant values follow
 * the public PVCAM headers as pyvcam was built against them.
 */
#ifndef PVCAM_SIM_H
#define PVCAM_SIM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---- PVCAM scalar types (master.h) ------------------------------------ */
typedef int8_t int8;
typedef uint8_t uns8;
typedef int16_t int16;
typedef uint16_t uns16;
typedef int32_t int32;
typedef uint32_t uns32;
typedef int64_t long64;
typedef uint64_t ulong64;
typedef double flt64;
typedef uint16_t rs_bool;

#define PV_OK 1
#define PV_FAIL 0

#define CAM_NAME_LEN 32
#define ERROR_MSG_LEN 255
#define PARAM_STR_LEN 32 /* pvc reads CHAR_PTR params into a 32-byte buffer */

/* ---- PVCAM structs (layouts checked against pvc's debug info) --------- */
typedef struct {
    uns16 s1, s2, sbin, p1, p2, pbin;
} rgn_type;

typedef struct {
    uns32 f1;
    uns16 f2;
    uns16 f3;
    uns8 f4[8];
} PVCAM_FRAME_INFO_GUID;

typedef struct {
    PVCAM_FRAME_INFO_GUID FrameInfoGUID;
    int16 hCam;
    int32 FrameNr;
    long64 TimeStamp;    /* end of frame, 0.1 ms since acquisition start */
    int32 ReadoutTime;   /* 0.1 ms */
    long64 TimeStampBOF; /* beginning of frame, 0.1 ms since acquisition start */
} FRAME_INFO;

typedef void (*frame_callback)(FRAME_INFO *info, void *context);

typedef struct {
    uns16 entries;
    uns32 *params;
} smart_stream_type;

/* ---- constants from pvcam.h -------------------------------------------- */
enum { ATTR_CURRENT, ATTR_COUNT, ATTR_TYPE, ATTR_MIN, ATTR_MAX, ATTR_DEFAULT,
       ATTR_INCREMENT, ATTR_ACCESS, ATTR_AVAIL, ATTR_LIVE };
enum { ACC_READ_ONLY = 1, ACC_READ_WRITE = 2 };
enum { TYPE_INT16 = 1, TYPE_INT32 = 2, TYPE_FLT64 = 4, TYPE_UNS8 = 5,
       TYPE_UNS16 = 6, TYPE_UNS32 = 7, TYPE_UNS64 = 8, TYPE_ENUM = 9,
       TYPE_BOOLEAN = 11, TYPE_INT8 = 12, TYPE_CHAR_PTR = 13, TYPE_VOID_PTR = 14,
       TYPE_INT64 = 16, TYPE_SMART_STREAM_TYPE_PTR = 18, TYPE_RGN_TYPE = 20 };
enum { READOUT_NOT_ACTIVE, EXPOSURE_IN_PROGRESS, READOUT_IN_PROGRESS,
       READOUT_COMPLETE, READOUT_FAILED };
#define FRAME_AVAILABLE READOUT_COMPLETE
enum { CIRC_NONE, CIRC_OVERWRITE, CIRC_NO_OVERWRITE };
enum { PL_CALLBACK_BOF, PL_CALLBACK_EOF };
enum { PL_SW_TRIG_STATUS_TRIGGERED, PL_SW_TRIG_STATUS_IGNORED };
enum { EXP_RES_ONE_MILLISEC, EXP_RES_ONE_MICROSEC, EXP_RES_ONE_SEC };

#define EXT_TRIG_INTERNAL (7 << 8)
#define EXT_TRIG_TRIG_FIRST (8 << 8)
#define EXT_TRIG_EDGE_RISING (9 << 8)
#define EXT_TRIG_SOFTWARE_FIRST (11 << 8)
#define EXT_TRIG_SOFTWARE_EDGE (12 << 8)
#define TRIGGER_MASK 0xFF00
#define EXPOSE_OUT_MASK 0x00FF

/* ---- errors ------------------------------------------------------------- */
/* 157 and 185 follow the vendor's numbering (both appear in public reports);
 * the other codes are the simulator's own. */
enum sim_error {
    ERR_NONE = 0,
    ERR_INVALID_ARGUMENT = 140,
    ERR_NOT_AVAILABLE = 141,
    ERR_READ_ONLY = 142,
    ERR_OUT_OF_RANGE = 143,
    ERR_NO_SUCH_CAMERA = 144,
    ERR_CAMERA_ALREADY_OPEN = 145,
    ERR_CAMERA_NOT_OPEN = 146,
    ERR_ACQUISITION_RUNNING = 147,
    ERR_NOT_SET_UP = 148,
    ERR_NO_FRAME = 149,
    ERR_BUFFER_TOO_SMALL = 150,
    ERR_NOT_ACQUIRING = 151,
    ERR_CAMERA_DISCONNECTED = 152,
    ERR_ALREADY_INITIALIZED = 156,
    ERR_NOT_INITIALIZED = 157,
    ERR_CONFIGURATION_INVALID = 185,
};

rs_bool sim_fail(enum sim_error code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sim_clear_error(void);

/* ---- the modelled camera ------------------------------------------------- */
#define SENSOR_WIDTH 2048
#define SENSOR_HEIGHT 2048
#define PIXEL_SIZE_NM 6500
#define MAX_CAMERAS 8
#define MAX_GAINS 3
#define MAX_SPEEDS 2
#define MAX_INFLIGHT 4
#define SMART_MAX_ENTRIES 16 /* modelled: the real camera's limit is not documented */

typedef struct {
    const char *name;
    int16 bit_depth;
    uns32 full_well;
} sim_gain;

typedef struct {
    const char *name;
    uns16 pixel_time_ns;
    uint32_t row_time_ns; /* rolling-shutter line time: readout = rows x this */
    int gain_count;
    sim_gain gains[MAX_GAINS];
} sim_speed;

typedef struct {
    const char *name;
    int32 value;
    int speed_count;
    sim_speed speeds[MAX_SPEEDS];
} sim_port;

typedef struct {
    const char *name;
    int32 value;
} sim_enum_item;

extern const sim_port SIM_PORTS[];
extern const int SIM_PORT_COUNT;
extern const sim_enum_item SIM_TRIGGER_MODES[];
extern const int SIM_TRIGGER_MODE_COUNT;
extern const sim_enum_item SIM_EXPOSE_OUT_MODES[];
extern const int SIM_EXPOSE_OUT_MODE_COUNT;

/* A pool of frames rendered once for one ROI/binning/bit-depth/seed
 * combination: frame n is a copy of pool frame (n - 1) % pool_frames with its
 * number stamped in, so the sensor costs about one memory copy per frame. */
typedef struct {
    rgn_type roi;
    int16 bit_depth;
    uint64_t seed;
    size_t pixels;
    unsigned pool_frames;
    uint16_t *pool; /* pool_frames x pixels values */
} sim_pixels;

/* A frame event waiting for the callback thread (BOF or EOF). */
typedef struct {
    int32 nr;
    int event; /* PL_CALLBACK_BOF or PL_CALLBACK_EOF */
    uns32 slot;
    uint64_t bof_ns, eof_ns;
} sim_note;

/* What the simulator itself costs and what overran, over a camera's life. */
typedef struct {
    uint64_t frames_generated;   /* frames the sensor finished (drops included) */
    uint64_t frames_written;     /* frames copied into the host's buffer */
    uint64_t frames_overwritten; /* written, then overwritten before their callback */
    uint64_t notes_discarded;    /* callback events discarded, the queue full */
    uint64_t sensor_cpu_ns;      /* CPU of the sensor threads */
    uint64_t notifier_cpu_ns;    /* CPU of the callback threads, outside callbacks */
    uint64_t callback_cpu_ns;    /* CPU inside the callbacks (the host's own work) */
    uint64_t max_backlog;        /* most events ever waiting for the callback thread */
} pvsim_stats_t;

typedef struct {
    int32 nr;
    uint64_t bof_ns;
    uint64_t eof_due_ns;
} sim_inflight;

/* faults (sim_faults.c) */
enum sim_fault_kind {
    FAULT_STALL = 1,
    FAULT_READOUT_FAILURE,
    FAULT_DISCONNECT,
    FAULT_DROP,
    FAULT_PARAM_POLL,          /* parameter access mid-stream kills the stream */
    FAULT_CALLBACK_REREGISTER, /* a double callback registration kills callbacks */
    FAULT_BYTE_LIMIT,          /* frames stop after so many bytes */
    FAULT_KIND_LAST = FAULT_BYTE_LIMIT,
};
typedef struct {
    uint64_t serial; /* 0: empty */
    int kind;
    int camera; /* -1: every camera */
    uint64_t after_frames;
    uint64_t every;    /* drop: every n-th frame after after_frames */
    uint64_t amount;   /* param_poll: the call that fires; byte_limit: bytes */
    double duration_s; /* <= 0: until cleared */
    int times_left;    /* acquisitions still to affect; < 0: unlimited */
    uint64_t generation;
} sim_fault;

/* Per-acquisition progress of one injected fault (a copy survives the
 * fault leaving the table once its last use has fired). */
typedef struct {
    sim_fault fault;
    int fired;
    uint64_t fired_ns;
    int finished;
    uint64_t calls; /* param_poll: parameter calls counted so far */
} sim_fault_progress;

#define MAX_FAULTS 16

typedef struct {
    int index;
    char name[CAM_NAME_LEN];
    char serial[PARAM_STR_LEN];

    pthread_mutex_t lock;
    pthread_cond_t wake; /* generator thread sleeps here */

    int open;
    int disconnected;
    uint64_t open_ns;

    /* settings */
    int port;
    int speed;
    int gain;
    int32 exp_res;
    int32 clear_mode;
    int32 fan_speed;
    int32 pmode;
    int16 temp_setpoint;
    double temp_start; /* degC when the setpoint last changed */
    uint64_t temp_since_ns;
    int32 trigger_mode;    /* from the last setup */
    int32 expose_out_mode; /* from the last setup */

    /* last pl_exp_setup_* */
    int setup_done;
    int is_sequence;
    rgn_type roi;
    uns32 exp_time; /* in exp_res units */
    int16 exp_mode;
    int16 buffer_mode;
    uns16 exp_total;
    uns32 frame_bytes;
    uint64_t exposure_ns;
    uint64_t readout_ns;
    uint64_t period_ns;
    sim_pixels pixels;

    /* S.M.A.R.T. streaming: exposures (exp_res units) applied frame by frame,
     * in a circle, instead of the setup's; taken at setup when enabled. */
    int smart_enabled;
    uns16 smart_count;
    uns32 smart_values[SMART_MAX_ENTRIES];
    uns16 smart_frames; /* entries the last setup took (0: its own exposure) */
    uint64_t smart_ns[SMART_MAX_ENTRIES];

    int metadata_enabled; /* PARAM_METADATA_ENABLED: frames carry PVCAM headers */
    uns32 pixel_offset;   /* bytes of metadata before the pixels in each frame */

    frame_callback on_bof, on_eof;
    void *bof_context, *eof_context;
    /* A callback was registered over one still registered (BOF, EOF); cleared
     * by deregistering that event or closing the camera. */
    int registered_twice[2];

    /* Parameter calls (get, set, enumeration) made on this camera while a
     * continuous acquisition streamed, over the camera's whole life. */
    uint64_t param_calls_mid_stream;
    uns32 last_param_mid_stream;

    /* acquisition */
    int acquiring;
    int stop_requested;
    int thread_started;
    pthread_t thread;
    uns8 *buffer;
    uns32 slot_count;
    int16 status;
    uint64_t start_ns;
    uint64_t next_start_ns;
    int32 frames_started; /* camera frame counter (FrameNr) */
    uint64_t frames_delivered;
    uint64_t frames_dropped;
    uint64_t frames_generated_total; /* over the camera's whole life */
    uns32 latest_slot;
    uns32 held;        /* delivered frames not yet released (or overwritten) */
    uns32 buffer_fills;
    FRAME_INFO *slot_info;
    sim_inflight inflight[MAX_INFLIGHT];
    int inflight_count;
    int pending_triggers;
    uint64_t last_bof_ns;
    uint64_t last_period_ns;
    int halted_for_buffer;
    /* The sensor (generator thread) writes frames on its schedule whatever the
     * host does; a second thread makes the callbacks from this queue, so a
     * held-up callback delays only the callbacks.  A frame whose slot the
     * sensor rewrote before its callback came is skipped and counted. */
    uint64_t generation; /* bumped at every start and stop: old threads exit */
    pthread_cond_t notify_wake;
    pthread_t notifier;
    int notifier_started;
    sim_note *notes;
    uns32 note_capacity, note_head, note_count;
    int32 *slot_nr;          /* frame number the sensor last wrote in each slot */
    uint64_t frames_written; /* this acquisition */
    uns32 in_buffer;         /* CIRC_NO_OVERWRITE: written and not released */
    pvsim_stats_t stats;
    /* param_poll fired: no frame starts or arrives again and the status reads
     * READOUT_NOT_ACTIVE until the acquisition is stopped and restarted. */
    int stream_dead;
    /* callback_reregister: the acquisition started after a double
     * registration; frames after callback_limit arrive without callbacks. */
    int registered_twice_at_start;
    int32 callback_limit;
    sim_fault_progress fault_progress[MAX_FAULTS];
} sim_camera;

/* library state (sim_core.c) */
int sim_is_initialized(void);
int sim_camera_total(void);
sim_camera *sim_camera_at(int index);
sim_camera *sim_lock_camera(int16 hcam); /* locks; NULL (error set) if not usable */
uint64_t sim_now_ns(void);
uint64_t sim_seed(void);
double sim_temperature(const sim_camera *cam, uint64_t now_ns);

/* parameters (sim_params.c) */
void sim_params_reset(sim_camera *cam);
const sim_speed *sim_current_speed(const sim_camera *cam);
const sim_gain *sim_current_gain(const sim_camera *cam);

/* acquisition (sim_acquisition.c) */
void sim_acquisition_stop(sim_camera *cam); /* called with cam->lock held */
/* A parameter call on cam (lock held): counted, and a param_poll fault may fire. */
void sim_param_access(sim_camera *cam, uns32 id);
uint64_t sim_readout_ns(const sim_camera *cam, const rgn_type *roi);

/* frame metadata (sim_metadata.c) */
#define METADATA_BYTES 80u /* one frame header and one ROI header */
void sim_metadata_write(const sim_camera *cam, uns8 *frame, int32 nr, uint64_t bof_ns,
                        uint64_t eof_ns);

/* pixels (sim_pixels.c) */
int sim_pixels_prepare(sim_pixels *px, const rgn_type *roi, int16 bit_depth, uint64_t seed);
void sim_pixels_render(const sim_pixels *px, int32 frame_nr, uint16_t *out);
uint64_t sim_thread_cpu_ns(void);
void sim_pixels_free(sim_pixels *px);

int sim_faults_snapshot(sim_fault out[MAX_FAULTS], uint64_t *generation);
void sim_fault_consume(uint64_t serial);
void sim_wake_all_cameras(void);

#endif
