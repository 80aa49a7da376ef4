// Shared declarations of the PostgreSQL glue: GUCs, entry points, helpers.
#pragma once

#include "pg/pg.h"

/// GUCs (see _PG_init in init.cpp for their documentation).
extern char* velostream_database;
extern int velostream_partitions;
extern int velostream_flush_interval_ms;
extern int velostream_batch_size;
/// velostream.state_memory, in kB: an owned view's state on one partition
/// beyond which its coldest groups are evicted (views without windows).
extern int velostream_state_memory_kb;
extern bool velostream_fast_copy;
extern bool velostream_native_expressions;

/// Name of the column appended to every stream log table: the full id of the
/// transaction that inserted the row (xid8).
#define VELOSTREAM_XID_COLUMN "_velostream_xid"

/// The extension version whose catalog this library reads and writes
/// (velostream.control's default_version). Workers only run against it: a
/// database still on an older version waits for ALTER EXTENSION ... UPDATE.
#define VELOSTREAM_CATALOG_VERSION "0.7"

/// True if the installed extension's version is VELOSTREAM_CATALOG_VERSION.
/// Call inside a transaction.
bool velostream_catalog_current(void);

/// Fencing: the lock that makes a partition worker the only one of its
/// (stream, partition). An advisory lock of the current database with keys
/// (stream oid, partition) and field4 VELOSTREAM_FENCE_LOCK_SPACE (0x5653,
/// "VS"), so it cannot collide with SQL advisory locks (which use 1 and 2);
/// pg_locks shows it as locktype advisory, classid = stream, objid =
/// partition, objsubid = 22099.
#define VELOSTREAM_FENCE_LOCK_SPACE 0x5653
void velostream_fence_locktag(LOCKTAG* tag, Oid stream, int partition);

/// Installs / chains the ProcessUtility hook (utility_hook.cpp).
void velostream_install_utility_hook(void);

/// Registers the launcher background worker (launcher.cpp). Postmaster only.
void velostream_register_launcher(void);

/// True if `relid` is a foreign table on a velostream server without a
/// `brokers` option, i.e. a stream fed by INSERT/COPY.
bool velostream_is_local_stream(Oid relid);

/// True if `relid` is a foreign table on any velostream server (a stream
/// fed by INSERT/COPY or a Kafka stream).
bool velostream_is_stream(Oid relid);

/// True if `serverid`'s wrapper is velostream.
bool velostream_is_velostream_server(Oid serverid);

/// True if server `serverid` is a Kafka cluster (has a `brokers` option).
bool velostream_is_kafka_server(Oid serverid);

/// Names of a Kafka stream's optional metadata columns, filled from each
/// message when declared: _partition int, _offset bigint,
/// _timestamp timestamptz, _key text.
extern const char* const velostream_kafka_metadata_columns[4];
extern const Oid velostream_kafka_metadata_types[4];

/// Value of foreign-table option `name` of stream `relid`, or NULL.
const char* velostream_table_option(Oid relid, const char* name);

/// Creates the log tables and catalog rows of a new local stream
/// (streams.cpp). Called after CREATE FOREIGN TABLE created `relid`.
void velostream_create_stream(Oid relid);

/// Handles CREATE MATERIALIZED VIEW ... WITH (velostream.continuous)
/// (continuous_view.cpp).
void velostream_create_continuous_view(CreateTableAsStmt* stmt, const char* query_string, int stmt_location,
                                       int stmt_len);

/// Runs COPY ... FROM STDIN into a local stream on the fast path
/// (copy_from.cpp) and sets `qc`; returns false, having done nothing the
/// client sees, when the statement is not one it takes (PostgreSQL's COPY
/// then runs). Raises COPY's own errors (permissions, bad data).
bool velostream_copy_from(CopyStmt* stmt, const char* query_string, QueryCompletion* qc);

/// True if velostream_copy_from would take `stmt` (it changes nothing the
/// client sees; it locks the stream as the COPY will).
bool velostream_copy_applies(CopyStmt* stmt, const char* query_string);

/// True if `relid` is a continuous view's result table.
bool velostream_is_continuous_view(Oid relid);

/// Number of columns continuous view `relid` was created with (its first
/// attributes; columns added later by ALTER TABLE are the user's).
int velostream_view_column_count(Oid relid);

/// Owner of relation `relid`, or InvalidOid if it does not exist.
Oid velostream_rel_owner(Oid relid);

/// Switches the current user to the bootstrap superuser, so that a
/// non-superuser's CREATE of a stream or view can write velostream's catalog
/// and create its internal tables; restores the saved user with
/// velostream_end_as_superuser. An ERROR in between is safe: aborting the
/// transaction restores the user.
void velostream_begin_as_superuser(Oid* save_userid, int* save_sec_context);
void velostream_end_as_superuser(Oid save_userid, int save_sec_context);

/// Runs `fn(arg)` when `cxt` is reset or deleted (also when an ERROR
/// aborts the transaction that owns it): how C++ objects that outlive a call
/// are freed without a C++ exception or longjmp crossing frames.
void velostream_on_context_reset(MemoryContext cxt, MemoryContextCallbackFunction fn, void* arg);

/// Runs an SQL command through SPI (caller is connected); raises on error.
void velostream_spi_exec(const char* sql, int expected);

/// Creates table velostream.`name` with `definition` (the column list and
/// any WITH clause) and stores its bytea column `blob_column` out of line
/// without compression: written once, read once, compression would only cost
/// CPU. Returns the table's oid. SPI connected.
Oid velostream_create_blob_table(const char* name, const char* definition, const char* blob_column);

/// Makes table `relid` (a partition log or view state velostream created in
/// schema velostream) a member of extension velostream, and removes any
/// internal dependency on its stream or view: pg_dump then leaves it out,
/// and DROP ... CASCADE of its stream never reaches the extension. The
/// sql_drop event trigger drops it with its stream or view
/// (velostream._drop_member). Call as a superuser.
void velostream_make_member(Oid relid);

/// The analysed SELECT `query` as SQL text with every name schema-qualified
/// (deparsed with an empty search_path), so it analyses to the same query in
/// any session: what pg_restore registers a continuous view from.
char* velostream_query_sql(Query* query);

/// Parses and analyses velostream_query_sql's text back into a Query, with an
/// empty search_path. Raises the parser's errors.
Query* velostream_parse_query_sql(const char* sql);
