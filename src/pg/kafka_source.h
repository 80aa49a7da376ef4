// The Kafka source of a partition worker: consumes the topic partitions the
// worker owns, decodes messages into the worker's batch, and saves the next
// offsets, dead letters and consumer statistics in the flush's transaction.
#pragma once

#include "engine/batch.h"
#include "pg/pg.h"

struct KafkaSource;

/// Opens the consumer of stream `stream` for worker `worker` of `nworkers`
/// (it owns topic partitions p with p % nworkers == worker). Reads the
/// server, user mapping and stream options; call inside a transaction.
/// Raises ERROR on a bad configuration. Marks every column of `batch` used.
KafkaSource* velostream_kafka_open(Oid stream, int worker, int nworkers, velostream::engine::RecordBatch* batch);

/// Consumes for up to velostream.flush_interval (or until max_rows):
/// decodes messages into the batch, calling feed(rows) whenever `capacity`
/// rows are decoded and once at the end. Malformed messages become dead
/// letters. Assigns (or re-assigns, when the topic grew) partitions at the
/// stored offsets first. Inside the cycle's transaction, SPI connected.
/// Returns the number of messages consumed (valid or not).
uint64 velostream_kafka_read(KafkaSource* src, size_t capacity, uint64 max_rows, void (*feed)(size_t rows));

/// Writes the next offsets, dead letters and statistics of what
/// velostream_kafka_read consumed, in the current transaction (the one that
/// also upserts the results). `force` writes statistics even when nothing
/// was consumed (refreshing watermarks and errors). SPI connected.
void velostream_kafka_save(KafkaSource* src, bool force);

/// Tracks the largest event time of each topic partition in batch column
/// `column` (a timestamptz; -1: none), saved by velostream_kafka_save in
/// velostream.kafka_offsets.max_event_time with the offsets, and the time
/// each last received messages (last_input_at): the topic partitions are the
/// stream's source partitions for its watermark (event_time.h).
void velostream_kafka_set_event_time(KafkaSource* src, int column);

/// Pauses or resumes fetching (velostream.pause / velostream.resume).
void velostream_kafka_set_paused(KafkaSource* src, bool paused);

/// True when velostream_kafka_read blocks for new messages (partitions are
/// assigned and the stream is not paused), so the caller need not sleep.
bool velostream_kafka_waits(const KafkaSource* src);

/// True when the server, user mapping or stream options differ from those
/// the consumer was opened with (ALTER SERVER / USER MAPPING / FOREIGN
/// TABLE): the worker then exits and the launcher starts it afresh.
/// Inside a transaction.
bool velostream_kafka_config_changed(KafkaSource* src);
