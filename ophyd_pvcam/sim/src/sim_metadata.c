/*
 * PVCAM frame metadata: with PARAM_METADATA_ENABLED every frame in the buffer
 * starts with a frame header and a ROI header (packed, layouts as in pvcam.h
 * and checked against pvc's debug info), then the pixels.  The header carries
 * the camera's own frame number and BOF/EOF times, which pyvcam hands to
 * Python only through metadata.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define PL_MD_FRAME_SIGNATURE 5328208u
#define MD_VERSION 3

typedef struct __attribute__((packed)) {
    uns32 signature;
    uns8 version;
    uns32 frameNr;
    uns16 roiCount;
    ulong64 timestampBOF; /* ps */
    ulong64 timestampEOF; /* ps */
    ulong64 exposureTime; /* ps */
    uns8 bitDepth;
    uns8 colorMask;
    uns8 flags;
    uns16 extendedMdSize;
    uns8 imageFormat;
    uns8 imageCompression;
    uns8 reserved[6];
} md_frame_header_v3;

typedef struct __attribute__((packed)) {
    uns16 roiNr;
    uns32 timestampBOR;
    uns32 timestampEOR;
    rgn_type roi;
    uns8 flags;
    uns16 extendedMdSize;
    uns32 roiDataSize;
    uns8 reserved[3];
} md_frame_roi_header;

typedef struct {
    md_frame_roi_header *header;
    void *data;
    uns32 dataSize;
    void *extMdData;
    uns16 extMdDataSize;
} md_frame_roi;

typedef struct {
    md_frame_header_v3 *header;
    void *extMdData;
    uns16 extMdDataSize;
    rgn_type impliedRoi;
    md_frame_roi *roiArray;
    uns16 roiCapacity;
    uns16 roiCount;
} md_frame;

_Static_assert(sizeof(md_frame_header_v3) == 48, "frame header is 48 bytes");
_Static_assert(sizeof(md_frame_roi_header) == 32, "ROI header is 32 bytes");
_Static_assert(sizeof(md_frame_roi) == 40, "md_frame_roi is 40 bytes");
_Static_assert(sizeof(md_frame) == 48, "md_frame is 48 bytes");
_Static_assert(METADATA_BYTES == 80, "one frame header and one ROI header");

void sim_metadata_write(const sim_camera *cam, uns8 *frame, int32 nr, uint64_t bof_ns,
                        uint64_t eof_ns)
{
    md_frame_header_v3 header = {
        .signature = PL_MD_FRAME_SIGNATURE,
        .version = MD_VERSION,
        .frameNr = (uns32)nr,
        .roiCount = 1,
        .timestampBOF = (bof_ns - cam->start_ns) * 1000ull,
        .timestampEOF = (eof_ns - cam->start_ns) * 1000ull,
        .exposureTime = (eof_ns - bof_ns - cam->readout_ns) * 1000ull,
        .bitDepth = (uns8)sim_current_gain(cam)->bit_depth,
    };
    md_frame_roi_header roi = {
        .roiNr = 1,
        .roi = cam->roi,
        .roiDataSize = cam->frame_bytes - METADATA_BYTES,
    };
    memcpy(frame, &header, sizeof header);
    memcpy(frame + sizeof header, &roi, sizeof roi);
}

rs_bool pl_md_create_frame_struct_cont(md_frame **frame, uns16 roi_count)
{
    if (!frame || roi_count == 0)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_md_create_frame_struct_cont: bad arguments");
    md_frame *md = calloc(1, sizeof *md);
    md_frame_roi *rois = calloc(roi_count, sizeof *rois);
    if (!md || !rois) {
        free(md);
        free(rois);
        return sim_fail(ERR_INVALID_ARGUMENT, "Out of memory for a metadata frame");
    }
    md->roiArray = rois;
    md->roiCapacity = roi_count;
    *frame = md;
    return PV_OK;
}

rs_bool pl_md_release_frame_struct(md_frame *frame)
{
    if (frame)
        free(frame->roiArray);
    free(frame);
    return PV_OK;
}

rs_bool pl_md_frame_decode(md_frame *frame, void *data, uns32 size)
{
    if (!frame || !data)
        return sim_fail(ERR_INVALID_ARGUMENT, "pl_md_frame_decode: null pointer");
    md_frame_header_v3 *header = data;
    if (size < METADATA_BYTES || header->signature != PL_MD_FRAME_SIGNATURE)
        return sim_fail(ERR_INVALID_ARGUMENT, "The buffer holds no frame metadata");
    if (header->roiCount > frame->roiCapacity)
        return sim_fail(ERR_BUFFER_TOO_SMALL, "Frame has %u ROIs; the structure holds %u",
                        header->roiCount, frame->roiCapacity);
    uns8 *cursor = (uns8 *)data + sizeof *header + header->extendedMdSize;
    uns8 *end = (uns8 *)data + size;
    for (uns16 i = 0; i < header->roiCount; ++i) {
        md_frame_roi_header *roi = (md_frame_roi_header *)cursor;
        uns8 *pixels = cursor + sizeof *roi + roi->extendedMdSize;
        if (pixels + roi->roiDataSize > end)
            return sim_fail(ERR_INVALID_ARGUMENT, "ROI %u runs past the end of the frame", i);
        frame->roiArray[i] = (md_frame_roi){
            .header = roi, .data = pixels, .dataSize = roi->roiDataSize};
        if (i == 0)
            frame->impliedRoi = roi->roi;
        cursor = pixels + roi->roiDataSize;
    }
    frame->header = header;
    frame->extMdData = NULL;
    frame->extMdDataSize = 0;
    frame->roiCount = header->roiCount;
    return PV_OK;
}
