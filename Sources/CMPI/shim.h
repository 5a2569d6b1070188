// MPI's handles are C macros (casts of addresses of global objects) that Swift
// cannot import. These inline functions hand them to Swift as values.
#ifndef VGGDP_CMPI_SHIM_H
#define VGGDP_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm vggdp_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm vggdp_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype vggdp_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype vggdp_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype vggdp_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype vggdp_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype vggdp_char(void) { return MPI_CHAR; }
static inline MPI_Datatype vggdp_int(void) { return MPI_INT; }
static inline MPI_Op vggdp_op_sum(void) { return MPI_SUM; }
static inline MPI_Op vggdp_op_max(void) { return MPI_MAX; }
static inline MPI_Op vggdp_op_min(void) { return MPI_MIN; }
static inline void *vggdp_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *vggdp_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Request vggdp_request_null(void) { return MPI_REQUEST_NULL; }
static inline int vggdp_success(void) { return MPI_SUCCESS; }
static inline int vggdp_any_source(void) { return MPI_ANY_SOURCE; }
static inline MPI_Datatype vggdp_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype vggdp_uint16(void) { return MPI_UINT16_T; }
static inline int vggdp_status_source(const MPI_Status *s) { return s->MPI_SOURCE; }
static inline int vggdp_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
static inline int vggdp_max_library_version(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
static inline int vggdp_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int vggdp_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int vggdp_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int vggdp_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline MPI_Errhandler vggdp_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int vggdp_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Info vggdp_info_null(void) { return MPI_INFO_NULL; }
static inline int vggdp_mode_nocheck(void) { return MPI_MODE_NOCHECK; }
static inline MPI_Win vggdp_win_null(void) { return MPI_WIN_NULL; }

#endif
