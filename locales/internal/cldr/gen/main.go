// Command gen writes locales/cldr_table.go from CLDR: with -dates and
// -numbers (the unpacked npm packages cldr-dates-modern and
// cldr-numbers-modern) it first refreshes the extract; then it writes the
// table from the extract. scripts/cldr.sh fetches the packages with npm
// and runs it; see package cldr.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"

	"github.com/tocsin-dev/tocsin/locales/internal/cldr"
)

func main() {
	dates := flag.String("dates", "", "unpacked cldr-dates-modern (empty: keep the extract)")
	numbers := flag.String("numbers", "", "unpacked cldr-numbers-modern")
	extract := flag.String("extract", "testdata/cldr/extract.json", "the extract to write or read")
	out := flag.String("out", "cldr_table.go", "the Go table to write")
	flag.Parse()
	if *dates != "" {
		ex, err := cldr.Read(*dates, *numbers)
		if err != nil {
			log.Fatal(err)
		}
		buf, err := json.MarshalIndent(ex, "", "  ")
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(*extract, append(buf, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	src, _, err := cldr.Table(*extract, "locales")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}
