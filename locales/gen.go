package locales

// Refresh the CLDR table (cldr_table.go) and its extract from npm's CLDR
// JSON packages; see package locales/internal/cldr.
//go:generate sh ../scripts/cldr.sh
