/*
 * The modelled Prime BSI parameter set: pl_get_param, pl_set_param and the
 * enumeration calls.  Every parameter is described once, by describe(), and
 * the generic attribute logic is shared by all of them.
 *
 * The port/speed/gain table is modelled, not measured: it is chosen so the
 * 16-bit full-frame rate is ~47 fps (as measured on a real Prime BSI with
 * the SDK example) and the 11-bit 200 MHz mode about twice that.
 */
#include <stdio.h>
#include <string.h>

#include "sim.h"

/* Parameter ids: (class << 16) | (type << 24) | number, as in pvcam.h. */
#define PID(cls, type, num) ((uns32)(((cls) << 16) | ((type) << 24) | (num)))
#define P_DD_VERSION PID(0, TYPE_UNS16, 2)
#define P_CAM_INTERFACE_TYPE PID(0, TYPE_ENUM, 10)
#define P_CAM_INTERFACE_MODE PID(0, TYPE_ENUM, 11)
#define P_ADC_OFFSET PID(2, TYPE_INT16, 195)
#define P_CHIP_NAME PID(2, TYPE_CHAR_PTR, 129)
#define P_VENDOR_NAME PID(2, TYPE_CHAR_PTR, 131)
#define P_PRODUCT_NAME PID(2, TYPE_CHAR_PTR, 132)
#define P_CAMERA_PART_NUMBER PID(2, TYPE_CHAR_PTR, 133)
#define P_PIX_PAR_DIST PID(2, TYPE_UNS16, 500)
#define P_PIX_PAR_SIZE PID(2, TYPE_UNS16, 63)
#define P_PIX_SER_DIST PID(2, TYPE_UNS16, 501)
#define P_PIX_SER_SIZE PID(2, TYPE_UNS16, 62)
#define P_FWELL_CAPACITY PID(2, TYPE_UNS32, 506)
#define P_PAR_SIZE PID(2, TYPE_UNS16, 57)
#define P_SER_SIZE PID(2, TYPE_UNS16, 58)
#define P_READOUT_TIME PID(2, TYPE_FLT64, 179)
#define P_CLEARING_TIME PID(2, TYPE_INT64, 180)
#define P_POST_TRIGGER_DELAY PID(2, TYPE_INT64, 181)
#define P_PRE_TRIGGER_DELAY PID(2, TYPE_INT64, 182)
#define P_CLEAR_MODE PID(2, TYPE_ENUM, 523)
#define P_PMODE PID(2, TYPE_ENUM, 524)
#define P_TEMP PID(2, TYPE_INT16, 525)
#define P_TEMP_SETPOINT PID(2, TYPE_INT16, 526)
#define P_CAM_FW_VERSION PID(2, TYPE_UNS16, 532)
#define P_HEAD_SER_NUM_ALPHA PID(2, TYPE_CHAR_PTR, 533)
#define P_FAN_SPEED_SETPOINT PID(2, TYPE_ENUM, 710)
#define P_EXPOSURE_MODE PID(2, TYPE_ENUM, 535)
#define P_EXPOSE_OUT_MODE PID(2, TYPE_ENUM, 560)
#define P_BIT_DEPTH PID(2, TYPE_INT16, 511)
#define P_GAIN_INDEX PID(2, TYPE_INT16, 512)
#define P_SPDTAB_INDEX PID(2, TYPE_INT16, 513)
#define P_GAIN_NAME PID(2, TYPE_CHAR_PTR, 514)
#define P_SPDTAB_NAME PID(2, TYPE_CHAR_PTR, 515)
#define P_READOUT_PORT PID(2, TYPE_ENUM, 247)
#define P_PIX_TIME PID(2, TYPE_UNS16, 516)
#define P_IMAGE_FORMAT PID(2, TYPE_ENUM, 248)
#define P_IMAGE_COMPRESSION PID(2, TYPE_ENUM, 249)
#define P_ROI PID(3, TYPE_RGN_TYPE, 1)
#define P_EXP_RES PID(3, TYPE_ENUM, 2)
#define P_EXP_RES_INDEX PID(3, TYPE_UNS16, 4)
#define P_EXPOSURE_TIME PID(3, TYPE_UNS64, 8)
#define P_CIRC_BUFFER PID(3, TYPE_BOOLEAN, 299)
#define P_FRAME_BUFFER_SIZE PID(3, TYPE_UNS64, 300)
#define P_BINNING_SER PID(3, TYPE_ENUM, 165)
#define P_BINNING_PAR PID(3, TYPE_ENUM, 166)
#define P_ROI_COUNT PID(3, TYPE_UNS16, 169)
#define P_METADATA_ENABLED PID(3, TYPE_BOOLEAN, 168)
#define P_SMART_STREAM_MODE_ENABLED PID(2, TYPE_BOOLEAN, 700)
#define P_SMART_STREAM_MODE PID(2, TYPE_UNS16, 701)
#define P_SMART_STREAM_EXP_PARAMS PID(2, TYPE_VOID_PTR, 702) /* its type: see describe() */

#define PORT0_NAME "Sensitivity"
#define PORT1_NAME "Speed"
const sim_port SIM_PORTS[] = {
    {PORT0_NAME, 0, 1, {
        {"100 MHz", 10, 10390, 2, {{"HDR", 16, 45000}, {"CMS", 12, 1000}}},
    }},
    {PORT1_NAME, 1, 2, {
        {"200 MHz", 5, 5195, 3,
         {{"Full well", 11, 10000}, {"Balanced", 11, 2000}, {"Sensitivity", 11, 1000}}},
        {"100 MHz", 10, 10390, 1, {{"Full well", 11, 10000}}},
    }},
};
const int SIM_PORT_COUNT = sizeof SIM_PORTS / sizeof SIM_PORTS[0];

const sim_enum_item SIM_TRIGGER_MODES[] = {
    {"Internal Trigger", EXT_TRIG_INTERNAL},
    {"Trigger First", EXT_TRIG_TRIG_FIRST},
    {"Edge Trigger", EXT_TRIG_EDGE_RISING},
    {"Software Trigger First", EXT_TRIG_SOFTWARE_FIRST},
    {"Software Trigger Edge", EXT_TRIG_SOFTWARE_EDGE},
};
const int SIM_TRIGGER_MODE_COUNT = sizeof SIM_TRIGGER_MODES / sizeof SIM_TRIGGER_MODES[0];

const sim_enum_item SIM_EXPOSE_OUT_MODES[] = {
    {"First Row", 0}, {"All Rows", 1}, {"Any Row", 2}, {"Rolling Shutter", 3},
};
const int SIM_EXPOSE_OUT_MODE_COUNT =
    sizeof SIM_EXPOSE_OUT_MODES / sizeof SIM_EXPOSE_OUT_MODES[0];

#define ENUM_LIST(array) array, (int)(sizeof array / sizeof array[0])
static const sim_enum_item CLEAR_MODES[] = {
    {"Never", 0}, {"Pre-Exposure", 1}, {"Pre-Sequence", 2},
};
static const sim_enum_item PMODES[] = {{"Normal", 0}};
static const sim_enum_item FAN_SPEEDS[] = {
    {"High", 0}, {"Medium", 1}, {"Low", 2}, {"Off", 3},
};
static const sim_enum_item EXP_RESOLUTIONS[] = {
    {"One Millisecond", EXP_RES_ONE_MILLISEC}, {"One Microsecond", EXP_RES_ONE_MICROSEC},
};
static const sim_enum_item BINNINGS[] = {{"1", 1}, {"2", 2}, {"4", 4}};
/* Every gain delivers 16-bit words, uncompressed (PL_IMAGE_FORMAT_MONO16,
 * PL_IMAGE_COMPRESSION_NONE).  The item names are the simulator's. */
static const sim_enum_item IMAGE_FORMATS[] = {{"Mono 16", 0}};
static const sim_enum_item IMAGE_COMPRESSIONS[] = {{"None", 0}};
/* One interface, as a camera on one link reports it: PL_CAM_IFC_TYPE_USB_3_0
 * in PL_CAM_IFC_MODE_IMAGING (pvcam.h's example table names them so). */
static const sim_enum_item INTERFACE_TYPES[] = {{"USB 3.0", 0x203}};
static const sim_enum_item INTERFACE_MODES[] = {{"Imaging", 2}};

/* The buffer size PARAM_FRAME_BUFFER_SIZE recommends for circular buffers. */
#define RECOMMENDED_BUFFER_FRAMES 16

/* Longest exposure accepted: one hour, in each resolution. */
#define MAX_EXPOSURE_MS 3600000ull
#define MAX_EXPOSURE_US 3600000000ull

const sim_speed *sim_current_speed(const sim_camera *cam)
{
    return &SIM_PORTS[cam->port].speeds[cam->speed];
}

const sim_gain *sim_current_gain(const sim_camera *cam)
{
    return &sim_current_speed(cam)->gains[cam->gain - 1];
}

void sim_params_reset(sim_camera *cam)
{
    cam->port = 0;
    cam->speed = 0;
    cam->gain = 1;
    cam->exp_res = EXP_RES_ONE_MILLISEC;
    cam->clear_mode = 2;
    cam->fan_speed = 0;
    cam->pmode = 0;
    cam->temp_setpoint = -2000;
    cam->trigger_mode = EXT_TRIG_INTERNAL;
    cam->expose_out_mode = 0;
    cam->metadata_enabled = 0;
    cam->smart_enabled = 0;
    cam->smart_count = 0;
    cam->setup_done = 0;
}

/* What a parameter is, right now, on this camera. */
typedef struct {
    int available;
    uns16 access;
    uns16 type;
    long long current, minimum, maximum, increment, fallback;
    double fcurrent;
    const char *text;
    const sim_enum_item *items;
    int item_count;
    rgn_type region; /* TYPE_RGN_TYPE: the current value */
    uns32 smart[SMART_MAX_ENTRIES]; /* TYPE_SMART_STREAM_TYPE_PTR: current entries */
} param_desc;

static void numeric(param_desc *d, uns16 access, long long cur, long long lo, long long hi,
                    long long def)
{
    d->available = 1;
    d->access = access;
    d->current = cur;
    d->minimum = lo;
    d->maximum = hi;
    d->increment = 1;
    d->fallback = def;
}

static void constant(param_desc *d, long long value)
{
    numeric(d, ACC_READ_ONLY, value, value, value, value);
}

static void text(param_desc *d, const char *value)
{
    d->available = 1;
    d->access = ACC_READ_ONLY;
    d->text = value;
}

static void enumeration(param_desc *d, uns16 access, const sim_enum_item *items, int count,
                        long long cur, long long def)
{
    long long lo = items[0].value, hi = items[0].value;
    for (int i = 1; i < count; ++i) {
        if (items[i].value < lo)
            lo = items[i].value;
        if (items[i].value > hi)
            hi = items[i].value;
    }
    numeric(d, access, cur, lo, hi, def);
    d->items = items;
    d->item_count = count;
}

/* The READOUT_PORT enumeration, in the same order as SIM_PORTS. */
static const sim_enum_item PORT_ITEMS[] = {{PORT0_NAME, 0}, {PORT1_NAME, 1}};

/* PARAM_FRAME_BUFFER_SIZE describes the acquisition set up last: a sequence
 * needs exactly its frames; a circular buffer at least one frame, at most
 * what fits in 4 GiB, RECOMMENDED_BUFFER_FRAMES by default. */
static void buffer_size(const sim_camera *cam, param_desc *d)
{
    long long frame = cam->frame_bytes;
    if (cam->is_sequence) {
        long long all = frame * cam->exp_total;
        numeric(d, ACC_READ_ONLY, all, all, all, all);
    } else {
        long long recommended = frame * RECOMMENDED_BUFFER_FRAMES;
        numeric(d, ACC_READ_ONLY, recommended, frame, (0xFFFFFFFFll / frame) * frame,
                recommended);
        d->increment = frame;
    }
}

static void describe(const sim_camera *cam, uns32 id, param_desc *d)
{
    static const rgn_type full = {0, SENSOR_WIDTH - 1, 1, 0, SENSOR_HEIGHT - 1, 1};
    memset(d, 0, sizeof *d);
    d->type = (uns16)((id >> 24) & 0xFF);
    const sim_speed *speed = sim_current_speed(cam);
    const rgn_type *roi = cam->setup_done ? &cam->roi : &full;
    switch (id) {
    case P_DD_VERSION: constant(d, 0x0310); break;
    case P_ADC_OFFSET: constant(d, 100); break;
    case P_CHIP_NAME: text(d, "GSENSE2020BSI"); break;
    case P_VENDOR_NAME: text(d, "Teledyne Photometrics"); break;
    case P_PRODUCT_NAME: text(d, "Prime BSI"); break;
    case P_CAMERA_PART_NUMBER: text(d, "PRIME-BSI-SIM"); break;
    case P_HEAD_SER_NUM_ALPHA: text(d, cam->serial); break;
    case P_PIX_PAR_DIST: case P_PIX_PAR_SIZE: case P_PIX_SER_DIST: case P_PIX_SER_SIZE:
        constant(d, PIXEL_SIZE_NM); break;
    case P_PAR_SIZE: constant(d, SENSOR_HEIGHT); break;
    case P_SER_SIZE: constant(d, SENSOR_WIDTH); break;
    case P_FWELL_CAPACITY: constant(d, sim_current_gain(cam)->full_well); break;
    case P_READOUT_TIME:
        constant(d, 0);
        d->fcurrent = (double)sim_readout_ns(cam, roi) / 1000.0; /* microseconds */
        break;
    case P_CLEARING_TIME: case P_POST_TRIGGER_DELAY: case P_PRE_TRIGGER_DELAY:
        constant(d, 0); break;
    case P_CLEAR_MODE:
        enumeration(d, ACC_READ_WRITE, ENUM_LIST(CLEAR_MODES), cam->clear_mode, 2); break;
    case P_PMODE: enumeration(d, ACC_READ_WRITE, ENUM_LIST(PMODES), cam->pmode, 0); break;
    case P_TEMP: {
        double t = sim_temperature(cam, sim_now_ns());
        constant(d, (long long)(t * 100.0 + (t < 0 ? -0.5 : 0.5)));
        break;
    }
    case P_TEMP_SETPOINT:
        numeric(d, ACC_READ_WRITE, cam->temp_setpoint, -2500, 2500, -2000); break;
    case P_CAM_FW_VERSION: constant(d, 0x0109); break;
    case P_FAN_SPEED_SETPOINT:
        enumeration(d, ACC_READ_WRITE, ENUM_LIST(FAN_SPEEDS), cam->fan_speed, 0); break;
    case P_EXPOSURE_MODE:
        enumeration(d, ACC_READ_ONLY, SIM_TRIGGER_MODES, SIM_TRIGGER_MODE_COUNT,
                    cam->trigger_mode, EXT_TRIG_INTERNAL);
        break;
    case P_EXPOSE_OUT_MODE:
        enumeration(d, ACC_READ_ONLY, SIM_EXPOSE_OUT_MODES, SIM_EXPOSE_OUT_MODE_COUNT,
                    cam->expose_out_mode, 0);
        break;
    case P_BIT_DEPTH: constant(d, sim_current_gain(cam)->bit_depth); break;
    case P_GAIN_INDEX: numeric(d, ACC_READ_WRITE, cam->gain, 1, speed->gain_count, 1); break;
    case P_SPDTAB_INDEX:
        numeric(d, ACC_READ_WRITE, cam->speed, 0, SIM_PORTS[cam->port].speed_count - 1, 0);
        break;
    case P_GAIN_NAME: text(d, sim_current_gain(cam)->name); break;
    case P_SPDTAB_NAME: text(d, speed->name); break;
    case P_READOUT_PORT:
        enumeration(d, ACC_READ_WRITE, ENUM_LIST(PORT_ITEMS), SIM_PORTS[cam->port].value, 0);
        break;
    case P_PIX_TIME: constant(d, speed->pixel_time_ns); break;
    case P_EXP_RES:
        enumeration(d, ACC_READ_WRITE, ENUM_LIST(EXP_RESOLUTIONS), cam->exp_res,
                    EXP_RES_ONE_MILLISEC);
        break;
    case P_EXP_RES_INDEX: constant(d, cam->exp_res); break;
    case P_EXPOSURE_TIME:
        numeric(d, ACC_READ_ONLY, cam->setup_done ? cam->exp_time : 0, 0,
                cam->exp_res == EXP_RES_ONE_MICROSEC ? MAX_EXPOSURE_US : MAX_EXPOSURE_MS, 0);
        break;
    case P_CIRC_BUFFER: constant(d, 1); break;
    case P_FRAME_BUFFER_SIZE:
        if (cam->setup_done) /* "available only after pl_exp_setup_seq/cont" */
            buffer_size(cam, d);
        break;
    case P_ROI: /* the region of the last setup; no live ROI on this camera */
        d->available = 1;
        d->access = ACC_READ_ONLY;
        d->region = *roi;
        break;
    case P_IMAGE_FORMAT:
        enumeration(d, ACC_READ_ONLY, ENUM_LIST(IMAGE_FORMATS), 0, 0); break;
    case P_IMAGE_COMPRESSION:
        enumeration(d, ACC_READ_ONLY, ENUM_LIST(IMAGE_COMPRESSIONS), 0, 0); break;
    case P_CAM_INTERFACE_TYPE:
        enumeration(d, ACC_READ_ONLY, ENUM_LIST(INTERFACE_TYPES), 0x203, 0x203); break;
    case P_CAM_INTERFACE_MODE:
        enumeration(d, ACC_READ_ONLY, ENUM_LIST(INTERFACE_MODES), 2, 2); break;
    case P_BINNING_SER: case P_BINNING_PAR:
        enumeration(d, ACC_READ_ONLY, ENUM_LIST(BINNINGS), 1, 1); break;
    case P_ROI_COUNT: numeric(d, ACC_READ_WRITE, 1, 1, 1, 1); break;
    case P_METADATA_ENABLED: numeric(d, ACC_READ_WRITE, cam->metadata_enabled, 0, 1, 0); break;
    case P_SMART_STREAM_MODE_ENABLED:
        numeric(d, ACC_READ_WRITE, cam->smart_enabled, 0, 1, 0); break;
    case P_SMART_STREAM_MODE: /* SMTMODE_ARBITRARY_ALL, the only mode pvcam.h defines */
        numeric(d, ACC_READ_WRITE, 0, 0, 0, 0); break;
    case P_SMART_STREAM_EXP_PARAMS:
        /* pvcam.h: "The parameter type is incorrectly defined. The actual type
         * is TYPE_SMART_STREAM_TYPE_PTR." ATTR_TYPE reports the actual one. */
        numeric(d, ACC_READ_WRITE, cam->smart_count, 0, SMART_MAX_ENTRIES, 0);
        d->type = TYPE_SMART_STREAM_TYPE_PTR;
        memcpy(d->smart, cam->smart_values, sizeof d->smart);
        break;
    default: d->available = 0; break;
    }
}

static rs_bool store(const param_desc *d, long long value, double fvalue, void *out)
{
    switch (d->type) {
    case TYPE_INT8: *(int8 *)out = (int8)value; break;
    case TYPE_UNS8: *(uns8 *)out = (uns8)value; break;
    case TYPE_INT16: *(int16 *)out = (int16)value; break;
    case TYPE_UNS16: case TYPE_BOOLEAN: *(uns16 *)out = (uns16)value; break;
    case TYPE_INT32: case TYPE_ENUM: *(int32 *)out = (int32)value; break;
    case TYPE_UNS32: *(uns32 *)out = (uns32)value; break;
    case TYPE_INT64: *(long64 *)out = (long64)value; break;
    case TYPE_UNS64: *(ulong64 *)out = (ulong64)value; break;
    case TYPE_FLT64: *(flt64 *)out = fvalue; break;
    default: return sim_fail(ERR_INVALID_ARGUMENT, "Unsupported parameter type %u", d->type);
    }
    return PV_OK;
}

static long long load(uns16 type, const void *in)
{
    switch (type) {
    case TYPE_INT8: return *(const int8 *)in;
    case TYPE_UNS8: return *(const uns8 *)in;
    case TYPE_INT16: return *(const int16 *)in;
    case TYPE_UNS16: case TYPE_BOOLEAN: return *(const uns16 *)in;
    case TYPE_INT32: case TYPE_ENUM: return *(const int32 *)in;
    case TYPE_UNS32: return *(const uns32 *)in;
    case TYPE_INT64: return *(const long64 *)in;
    case TYPE_UNS64: return (long long)*(const ulong64 *)in;
    default: return 0;
    }
}

/* S.M.A.R.T. exposures: ATTR_CURRENT fills a smart_stream_type (entries is its
 * capacity on the way in); the other attributes give only its first two bytes,
 * the entries (ATTR_MAX: how many the camera takes), except ATTR_COUNT, the
 * number set, as pvcam's SMART streaming chapter describes. */
static rs_bool get_smart(const param_desc *d, int16 attribute, void *value)
{
    uns16 count = (uns16)d->current;
    switch (attribute) {
    case ATTR_COUNT: *(uns32 *)value = count; return PV_OK;
    case ATTR_MAX: *(uns16 *)value = (uns16)d->maximum; return PV_OK;
    case ATTR_MIN: case ATTR_DEFAULT: *(uns16 *)value = 0; return PV_OK;
    case ATTR_INCREMENT: *(uns16 *)value = 1; return PV_OK;
    case ATTR_CURRENT: break;
    default: return sim_fail(ERR_INVALID_ARGUMENT, "Unknown attribute %d", attribute);
    }
    smart_stream_type *out = value;
    if (out->entries < count || (count && !out->params))
        return sim_fail(ERR_BUFFER_TOO_SMALL,
                        "The S.M.A.R.T. structure has room for %u exposures; %u are set",
                        out->entries, count);
    out->entries = count;
    if (count)
        memcpy(out->params, d->smart, count * sizeof *out->params);
    return PV_OK;
}

static rs_bool set_smart(sim_camera *cam, const smart_stream_type *in)
{
    uint64_t max_exposure = cam->exp_res == EXP_RES_ONE_MICROSEC ? MAX_EXPOSURE_US
                                                                 : MAX_EXPOSURE_MS;
    if (in->entries > SMART_MAX_ENTRIES)
        return sim_fail(ERR_OUT_OF_RANGE, "%u S.M.A.R.T. exposures; the camera takes up to %d",
                        in->entries, SMART_MAX_ENTRIES);
    if (in->entries && !in->params)
        return sim_fail(ERR_INVALID_ARGUMENT, "S.M.A.R.T. exposures: null pointer");
    for (int i = 0; i < in->entries; ++i)
        if (in->params[i] > max_exposure)
            return sim_fail(ERR_OUT_OF_RANGE, "S.M.A.R.T. exposure %u is above the maximum %llu",
                            in->params[i], (unsigned long long)max_exposure);
    memcpy(cam->smart_values, in->params, in->entries * sizeof *in->params);
    cam->smart_count = in->entries;
    return PV_OK;
}

rs_bool pl_get_param(int16 hcam, uns32 id, int16 attribute, void *value)
{
    if (!value)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_get_param: null pointer");
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    sim_param_access(cam, id);
    param_desc d;
    describe(cam, id, &d);
    pthread_mutex_unlock(&cam->lock);

    if (attribute == ATTR_AVAIL) {
        *(rs_bool *)value = (rs_bool)(d.available ? 1 : 0);
        return PV_OK;
    }
    if (!d.available)
        return sim_fail(ERR_NOT_AVAILABLE, "Parameter 0x%08X is not available on this camera", id);
    if (d.type == TYPE_SMART_STREAM_TYPE_PTR && attribute != ATTR_TYPE
        && attribute != ATTR_ACCESS && attribute != ATTR_LIVE)
        return get_smart(&d, attribute, value);
    switch (attribute) {
    case ATTR_TYPE: *(uns16 *)value = d.type; return PV_OK;
    case ATTR_ACCESS: *(uns16 *)value = d.access; return PV_OK;
    case ATTR_LIVE: *(rs_bool *)value = 0; return PV_OK;
    case ATTR_COUNT:
        if (d.text)
            *(uns32 *)value = (uns32)strlen(d.text) + 1;
        else if (d.items)
            *(uns32 *)value = (uns32)d.item_count;
        else if (d.increment > 0)
            *(uns32 *)value = (uns32)((d.maximum - d.minimum) / d.increment + 1);
        else
            *(uns32 *)value = 0; /* not a numeric range (a region) */
        return PV_OK;
    case ATTR_CURRENT: case ATTR_DEFAULT: case ATTR_MIN: case ATTR_MAX: case ATTR_INCREMENT:
        break;
    default:
        return sim_fail(ERR_INVALID_ARGUMENT, "Unknown attribute %d", attribute);
    }
    if (d.text) {
        snprintf((char *)value, PARAM_STR_LEN, "%s", d.text);
        return PV_OK;
    }
    if (d.type == TYPE_RGN_TYPE) {
        static const rgn_type full = {0, SENSOR_WIDTH - 1, 1, 0, SENSOR_HEIGHT - 1, 1};
        *(rgn_type *)value = attribute == ATTR_CURRENT ? d.region : full;
        return PV_OK;
    }
    long long v = attribute == ATTR_CURRENT ? d.current
                : attribute == ATTR_DEFAULT ? d.fallback
                : attribute == ATTR_MIN     ? d.minimum
                : attribute == ATTR_MAX     ? d.maximum
                                            : d.increment;
    double f = attribute == ATTR_CURRENT ? d.fcurrent : 0.0;
    return store(&d, v, f, value);
}

static int enum_has(const param_desc *d, long long value)
{
    for (int i = 0; i < d->item_count; ++i)
        if (d->items[i].value == value)
            return 1;
    return 0;
}

static rs_bool apply(sim_camera *cam, uns32 id, long long v)
{
    switch (id) {
    case P_READOUT_PORT:
        for (int i = 0; i < SIM_PORT_COUNT; ++i)
            if (SIM_PORTS[i].value == v) {
                cam->port = i;
                cam->speed = 0; /* a new port starts at its first speed and gain */
                cam->gain = 1;
            }
        break;
    case P_SPDTAB_INDEX:
        cam->speed = (int)v;
        if (cam->gain > sim_current_speed(cam)->gain_count)
            cam->gain = 1;
        break;
    case P_GAIN_INDEX: cam->gain = (int)v; break;
    case P_EXP_RES: cam->exp_res = (int32)v; break;
    case P_CLEAR_MODE: cam->clear_mode = (int32)v; break;
    case P_FAN_SPEED_SETPOINT: cam->fan_speed = (int32)v; break;
    case P_PMODE: cam->pmode = (int32)v; break;
    case P_TEMP_SETPOINT: {
        uint64_t now = sim_now_ns();
        cam->temp_start = sim_temperature(cam, now);
        cam->temp_since_ns = now;
        cam->temp_setpoint = (int16)v;
        break;
    }
    case P_ROI_COUNT: break;
    case P_METADATA_ENABLED: cam->metadata_enabled = (int)v; break;
    case P_SMART_STREAM_MODE_ENABLED: cam->smart_enabled = (int)v; break;
    case P_SMART_STREAM_MODE: break;
    default:
        return sim_fail(ERR_READ_ONLY, "Parameter 0x%08X cannot be set", id);
    }
    return PV_OK;
}

rs_bool pl_set_param(int16 hcam, uns32 id, void *value)
{
    if (!value)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_set_param: null pointer");
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    sim_param_access(cam, id);
    param_desc d;
    describe(cam, id, &d);
    rs_bool ok = PV_OK;
    long long v = load(d.type, value);
    if (!d.available)
        ok = sim_fail(ERR_NOT_AVAILABLE, "Parameter 0x%08X is not available on this camera", id);
    else if (d.access != ACC_READ_WRITE)
        ok = sim_fail(ERR_READ_ONLY, "Parameter 0x%08X is read-only", id);
    else if (cam->acquiring)
        ok = sim_fail(ERR_ACQUISITION_RUNNING,
                      "Cannot change parameter 0x%08X while acquiring", id);
    else if (d.type == TYPE_SMART_STREAM_TYPE_PTR)
        ok = set_smart(cam, value);
    else if (d.items && !enum_has(&d, v))
        ok = sim_fail(ERR_OUT_OF_RANGE, "Value %lld is not offered for parameter 0x%08X", v, id);
    else if (!d.items && (v < d.minimum || v > d.maximum))
        ok = sim_fail(ERR_OUT_OF_RANGE, "Value %lld is outside %lld..%lld for parameter 0x%08X",
                      v, d.minimum, d.maximum, id);
    else
        ok = apply(cam, id, v);
    pthread_mutex_unlock(&cam->lock);
    return ok;
}

static rs_bool enum_item(int16 hcam, uns32 id, uns32 index, const sim_enum_item **item)
{
    sim_camera *cam = sim_lock_camera(hcam);
    if (!cam)
        return PV_FAIL;
    sim_param_access(cam, id);
    param_desc d;
    describe(cam, id, &d);
    pthread_mutex_unlock(&cam->lock);
    if (!d.available)
        return sim_fail(ERR_NOT_AVAILABLE, "Parameter 0x%08X is not available on this camera", id);
    if (!d.items)
        return sim_fail(ERR_INVALID_ARGUMENT, "Parameter 0x%08X is not an enumeration", id);
    if (index >= (uns32)d.item_count)
        return sim_fail(ERR_OUT_OF_RANGE, "Enumeration index %u is outside 0..%d", index,
                        d.item_count - 1);
    *item = &d.items[index];
    return PV_OK;
}

rs_bool pl_enum_str_length(int16 hcam, uns32 id, uns32 index, uns32 *length)
{
    const sim_enum_item *item = NULL;
    if (!length)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_enum_str_length: null pointer");
    if (!enum_item(hcam, id, index, &item))
        return PV_FAIL;
    *length = (uns32)strlen(item->name) + 1;
    return PV_OK;
}

rs_bool pl_get_enum_param(int16 hcam, uns32 id, uns32 index, int32 *value, char *desc,
                          uns32 length)
{
    const sim_enum_item *item = NULL;
    if (!value || !desc)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_get_enum_param: null pointer");
    if (!enum_item(hcam, id, index, &item))
        return PV_FAIL;
    *value = item->value;
    if (length > 0)
        snprintf(desc, length, "%s", item->name);
    return PV_OK;
}
