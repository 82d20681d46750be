// Package gearmandqueue reads the background jobs gearmand left in its persistent queues, so that
// `gear server` started with gearmand's -q options takes them over.
package gearmandqueue

import (
	"database/sql"
	"fmt"
	"net/url"
	"regexp"

	"github.com/gearhq/gear/store"

	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3", SQLite built in
)

// DefaultSQLiteTable is gearmand's --libsqlite3-table default.
const DefaultSQLiteTable = "gearman_queue"

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ReadSQLite reads the jobs of gearmand's libsqlite3 queue (--libsqlite3-db=path,
// --libsqlite3-table=table) in the order gearmand stored them. The file is opened read-only and
// left as it is. Each job is a store.Job with Function, Unique, Data, Priority (0 high, 1 normal,
// 2 low, as gearmand numbers them) and When (Unix seconds; 0 = now).
func ReadSQLite(path, table string) ([]store.Job, error) {
	if table == "" {
		table = DefaultSQLiteTable
	}
	if !identifier.MatchString(table) {
		return nil, fmt.Errorf("libsqlite3 table %q is not a plain SQL identifier", table)
	}
	db, err := sql.Open("sqlite3", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("libsqlite3 queue %s: %w", path, err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT unique_key, function_name, priority, data, when_to_run FROM " + table + " ORDER BY rowid")
	if err != nil {
		return nil, fmt.Errorf("libsqlite3 queue %s, table %s: %w", path, table, err)
	}
	defer rows.Close()
	var jobs []store.Job
	for rows.Next() {
		var unique, function sql.NullString
		var priority, when sql.NullInt64
		var data []byte
		if err := rows.Scan(&unique, &function, &priority, &data, &when); err != nil {
			return nil, fmt.Errorf("libsqlite3 queue %s: %w", path, err)
		}
		if function.String == "" {
			return nil, fmt.Errorf("libsqlite3 queue %s: a job without a function (unique %q)", path, unique.String)
		}
		p := priority.Int64
		if p < 0 || p > 2 {
			return nil, fmt.Errorf("libsqlite3 queue %s: job %q of %s has priority %d (0, 1 or 2)", path, unique.String, function.String, p)
		}
		jobs = append(jobs, store.Job{Function: function.String, Unique: unique.String, Data: data,
			Priority: uint8(p), When: when.Int64})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("libsqlite3 queue %s: %w", path, err)
	}
	return jobs, nil
}
