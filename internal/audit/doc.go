// Package audit is Lethe's tamper-evident audit log: every access to
// personal data, every consent change, request step and erasure, as an
// append-only sequence of events that an auditor can check without trusting
// the operator.
//
// The events form the leaves of an RFC 6962 Merkle tree (the C2SP
// tlog-checkpoint model, hashed with github.com/transparency-dev/merkle).
// At least once a second while events flow, the log signs a checkpoint — the
// tree size and root hash, as a C2SP signed note under an Ed25519 key that
// lives in the key store — and stores it in three places: beside the log,
// in the key store (so a rollback of the log's files is seen), and
// optionally outside Lethe (a file path or a webhook the operator chooses).
// Verify recomputes the tree from the events and checks every checkpoint;
// an inclusion proof shows that one event is in a signed tree, offline.
//
// On disk (a directory beside the data store):
//
//	entries/<first index, 16 hex digits>.log  events, each framed as a record
//	entries/<first index>.idx                 per event: leaf hash, end offset
//	tree/<k>                                  hashes of the complete subtrees
//	                                          of 256^k leaves (C2SP tiles)
//	checkpoints                               every signed checkpoint, framed
//	pruned                                    first index still kept
//
// A record is a 4-byte big-endian length, the CRC-32C of the data, and the
// data (one event as JSON). Each segment holds 65,536 events, so that old
// segments can be pruned whole while the tree files keep the hashes needed
// to verify what remains.
//
// Events hold pseudonymous IDs and field names only, never personal-data
// values, so they outlive the erasure they prove. An event is acknowledged
// only once it is on stable storage (fdatasync); concurrent writers share
// syncs (group commit), and a lone writer never waits for a timer.
package audit
