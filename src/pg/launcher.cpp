// Launcher: a static background worker that keeps one partition worker
// running per (stream, partition) listed in velostream.stream_partitions of
// the database named by velostream.database. It restarts workers that exit
// (after a crash they resume from their last committed flush) and stops the
// workers of dropped streams.
//
// Fencing: each worker holds its partition's lock (velostream_fence_locktag)
// for its whole life, and a worker that cannot take it waits. A launcher
// restarted after pg_terminate_backend or a crash of its own finds workers it
// did not start still running: it adopts them (starts no second worker while
// the partition's lock is held) rather than starting a second set.
#include "pg/velostream.h"

extern "C" {
PGDLLEXPORT void velostream_launcher_main(Datum arg);
}

struct WorkerArgs {
  Oid database;
  int partition;
};

namespace {

constexpr int kMaxWorkers = 1024;
constexpr int kPollMs = 500;
constexpr int kRestartDelayMs = 1000;

struct Slot {
  Oid stream;
  int partition;
  BackgroundWorkerHandle* handle;
  TimestampTz started;
  bool wanted;
  bool adopted;  // run by a worker this launcher did not start
};

Slot* slots;
int nslots = 0;
bool warned_no_slot = false;

bool start_worker(Slot* s) {
  BackgroundWorker w;
  memset(&w, 0, sizeof(w));
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;  // the launcher restarts it
  snprintf(w.bgw_library_name, BGW_MAXLEN, "velostream");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "velostream_worker_main");
  snprintf(w.bgw_name, BGW_MAXLEN, "velostream worker %u/%d", s->stream, s->partition);
  snprintf(w.bgw_type, BGW_MAXLEN, "velostream worker");
  w.bgw_main_arg = ObjectIdGetDatum(s->stream);
  WorkerArgs args = {MyDatabaseId, s->partition};
  memcpy(w.bgw_extra, &args, sizeof(args));
  w.bgw_notify_pid = MyProcPid;
  s->started = GetCurrentTimestamp();
  if (!RegisterDynamicBackgroundWorker(&w, &s->handle)) {
    s->handle = nullptr;
    if (!warned_no_slot)
      ereport(WARNING, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                        errmsg("velostream: no background worker slot for stream %u partition %d", s->stream,
                               s->partition),
                        errhint("Raise max_worker_processes (each stream partition needs one worker).")));
    warned_no_slot = true;
    return false;
  }
  warned_no_slot = false;
  return true;
}

// Reads the wanted (stream, partition) pairs and marks / adds slots.
void read_wanted() {
  for (int i = 0; i < nslots; ++i) slots[i].wanted = false;
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, "velostream launcher: reading streams");
  // A database still on an older catalog waits for ALTER EXTENSION UPDATE.
  if (velostream_catalog_current()) {
    int rc = SPI_execute("SELECT stream::oid, partition FROM velostream.stream_partitions", true, 0);
    if (rc != SPI_OK_SELECT) elog(ERROR, "velostream launcher: reading velostream.stream_partitions failed");
    for (uint64 r = 0; r < SPI_processed; ++r) {
      bool isnull;
      Oid stream = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
      int part = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
      Slot* s = nullptr;
      for (int i = 0; i < nslots; ++i)
        if (slots[i].stream == stream && slots[i].partition == part) s = &slots[i];
      if (s == nullptr && nslots < kMaxWorkers) {
        s = &slots[nslots++];
        memset(s, 0, sizeof(*s));
        s->stream = stream;
        s->partition = part;
      }
      if (s) s->wanted = true;
    }
  }
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
  pgstat_report_activity(STATE_IDLE, NULL);
}

// True if a live worker holds (stream, partition)'s fencing lock.
bool partition_held(const Slot* s) {
  LOCKTAG tag;
  velostream_fence_locktag(&tag, s->stream, s->partition);
  if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL) return true;
  LockRelease(&tag, ExclusiveLock, true);
  return false;
}

void reconcile() {
  TimestampTz now = GetCurrentTimestamp();
  for (int i = 0; i < nslots;) {
    Slot* s = &slots[i];
    if (!s->wanted) {
      if (s->handle) TerminateBackgroundWorker(s->handle);
      slots[i] = slots[--nslots];
      continue;
    }
    pid_t pid;
    bool running = s->handle && GetBackgroundWorkerPid(s->handle, &pid) != BGWH_STOPPED;
    if (!running && partition_held(s)) {
      // A worker this launcher did not start (its predecessor's) still runs
      // the partition: adopt it. It exits by itself when its stream is dropped.
      if (!s->adopted)
        elog(LOG, "velostream: adopting the running worker of stream %u partition %d", s->stream, s->partition);
      s->adopted = true;
      s->handle = nullptr;
      ++i;
      continue;
    }
    if (!running && s->adopted) s->started = 0;  // the adopted worker exited: start ours at once
    s->adopted = false;
    if (!running && (s->started == 0 || TimestampDifferenceExceeds(s->started, now, kRestartDelayMs))) {
      if (s->started != 0) elog(LOG, "velostream: restarting worker for stream %u partition %d", s->stream, s->partition);
      start_worker(s);
    }
    ++i;
  }
}

}  // namespace

void velostream_register_launcher(void) {
  BackgroundWorker w;
  memset(&w, 0, sizeof(w));
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = 2;
  snprintf(w.bgw_library_name, BGW_MAXLEN, "velostream");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "velostream_launcher_main");
  snprintf(w.bgw_name, BGW_MAXLEN, "velostream launcher");
  snprintf(w.bgw_type, BGW_MAXLEN, "velostream launcher");
  RegisterBackgroundWorker(&w);
}

void velostream_launcher_main(Datum) {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnection(velostream_database, NULL, 0);
  slots = (Slot*)MemoryContextAllocZero(TopMemoryContext, sizeof(Slot) * kMaxWorkers);
  elog(LOG, "velostream launcher started in database \"%s\"", velostream_database);
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    read_wanted();
    reconcile();
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kPollMs, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
}
