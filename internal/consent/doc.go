// Package consent keeps the consent ledger and answers processing checks.
//
// Purposes are declared (datamap.LoadPurposes reads them) with their lawful basis, data
// categories and the current policy text's version and hash. The ledger is
// append-only: grants and withdrawals of consent per subject and purpose,
// restrictions of processing (Art. 18) and objections (Art. 21), and
// erasures, each with its proof — the time, the policy version and text
// hash, the channel, keyed hashes of the person's IP address and user
// agent (never the raw values), and who recorded it — and each audited
// before it is stored. The current standing is folded from the events in
// memory, so a check costs a map lookup; every instance follows the
// ledger, and every answer names the revision it was made at. Unknown,
// expired, erased or uncertain means deny.
package consent
