package config

// Evidence configures the evidence ledger of incidents (GET
// /v1/incidents/{id}/evidence): what each delivery attempt keeps.
type Evidence struct {
	// Texts keeps the exact text of every message sent, once per distinct
	// text and broadcast, so an export shows it next to its SHA-256.
	// Default true; false keeps only the hash (a text can still be proven
	// by hashing a copy of it).
	Texts bool `yaml:"texts"`
}
