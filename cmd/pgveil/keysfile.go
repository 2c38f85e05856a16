package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pgveil/pgveil/rules"
)

// keyRow is one key of a keys file: one value per key column, as text.
type keyRow []string

// readKeys reads the keys file of a table whose key is key: one key per
// line, or, with column, that column of a CSV file with a header line.
// A composite key is read from a CSV file whose header names every key
// column. Empty and repeated keys are skipped.
func readKeys(path, column string, key rules.Columns) ([]keyRow, error) {
	f := os.Stdin
	if path != "-" {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	var keys []keyRow
	var err error
	switch {
	case len(key) > 1 && column != "":
		return nil, &usageError{fmt.Sprintf("--column is for a one-column key; the key %s is read from a CSV file whose header names %s", key, strings.Join(key, ", "))}
	case len(key) > 1:
		keys, err = readKeyColumns(f, key)
	case column != "":
		keys, err = readKeyColumns(f, rules.Columns{column})
	default:
		keys, err = readKeyLines(f)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return uniqueKeys(keys), nil
}

// readKeyLines reads one key per line.
func readKeyLines(r io.Reader) ([]keyRow, error) {
	var keys []keyRow
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		keys = append(keys, keyRow{strings.TrimSpace(sc.Text())})
	}
	return keys, sc.Err()
}

// readKeyColumns reads the named columns of a CSV file with a header
// line. A row whose key values are all empty is skipped; one with some
// empty is an error naming its line.
func readKeyColumns(r io.Reader, columns rules.Columns) ([]keyRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading the CSV header: %w", err)
	}
	idx, err := headerIndexes(header, columns)
	if err != nil {
		return nil, err
	}
	var keys []keyRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return keys, nil
		}
		if err != nil {
			return nil, err
		}
		row, err := pickKey(rec, idx, columns)
		if err != nil {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		keys = append(keys, row)
	}
}

// headerIndexes finds each of columns in a CSV header.
func headerIndexes(header []string, columns rules.Columns) ([]int, error) {
	idx := make([]int, len(columns))
	for i, col := range columns {
		idx[i] = -1
		for j, h := range header {
			if strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) == col {
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			return nil, fmt.Errorf("no column %q in the CSV header (it names %s)", col, strings.Join(header, ", "))
		}
	}
	return idx, nil
}

// pickKey takes the key's values out of one CSV record.
func pickKey(rec []string, idx []int, columns rules.Columns) (keyRow, error) {
	row := make(keyRow, len(idx))
	empty := 0
	for i, j := range idx {
		if j < len(rec) {
			row[i] = strings.TrimSpace(rec[j])
		}
		if row[i] == "" {
			empty++
		}
	}
	if empty > 0 && empty < len(row) {
		for i, v := range row {
			if v == "" {
				return nil, fmt.Errorf("key column %s is empty", columns[i])
			}
		}
	}
	if empty == len(row) {
		return keyRow{""}, nil // skipped by uniqueKeys
	}
	return row, nil
}

// uniqueKeys drops empty and repeated keys, keeping the first order.
func uniqueKeys(keys []keyRow) []keyRow {
	seen := make(map[string]bool, len(keys))
	out := keys[:0]
	for _, k := range keys {
		id := strings.Join(k, "\x00")
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, k)
		}
	}
	return out
}

// keyArrays writes a batch of keys as the statement's parameters: for
// each key column, a PostgreSQL array in text format of its values.
func keyArrays(batch []keyRow) [][]byte {
	if len(batch) == 0 {
		return [][]byte{[]byte("{}")}
	}
	params := make([][]byte, len(batch[0]))
	for col := range params {
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range batch {
			if i > 0 {
				b.WriteByte(',')
			}
			writeArrayElem(&b, k[col])
		}
		b.WriteByte('}')
		params[col] = []byte(b.String())
	}
	return params
}

// writeArrayElem writes one array element, quoted, so that it suits a
// key of any type.
func writeArrayElem(b *strings.Builder, v string) {
	b.WriteByte('"')
	for j := 0; j < len(v); j++ {
		if v[j] == '"' || v[j] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[j])
	}
	b.WriteByte('"')
}
