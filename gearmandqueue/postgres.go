package gearmandqueue

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gearhq/gear/store"
)

// DefaultPostgresTable is gearmand's --libpq-table default.
const DefaultPostgresTable = "queue"

// ReadPostgres reads the jobs of gearmand's PostgreSQL queue (-q libpq/Postgres,
// --libpq-conninfo=conninfo, --libpq-table=table): a libpq connection string or URL, empty for
// libpq's PG* environment variables. The table is only read. Jobs come in the order their rows are
// stored (gearmand inserts one row per job), as ReadSQLite's do.
func ReadPostgres(ctx context.Context, conninfo, table string) ([]store.Job, error) {
	if table == "" {
		table = DefaultPostgresTable
	}
	if !identifier.MatchString(table) {
		return nil, fmt.Errorf("libpq table %q is not a plain SQL identifier", table)
	}
	where := store.MaskPostgresURL(conninfo)
	conn, err := pgx.Connect(ctx, conninfo)
	if err != nil {
		return nil, fmt.Errorf("libpq queue %s: %w", where, err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT unique_key, function_name, priority, data, when_to_run FROM "+table+" ORDER BY ctid")
	if err != nil {
		return nil, fmt.Errorf("libpq queue %s, table %s: %w", where, table, err)
	}
	defer rows.Close()
	var jobs []store.Job
	for rows.Next() {
		var unique, function *string
		var priority, when *int64
		var data []byte
		if err := rows.Scan(&unique, &function, &priority, &data, &when); err != nil {
			return nil, fmt.Errorf("libpq queue %s: %w", where, err)
		}
		j := store.Job{Data: data, Priority: 1}
		if unique != nil {
			j.Unique = *unique
		}
		if function == nil || *function == "" {
			return nil, fmt.Errorf("libpq queue %s: a job without a function (unique %q)", where, j.Unique)
		}
		j.Function = *function
		if priority != nil {
			if *priority < 0 || *priority > 2 {
				return nil, fmt.Errorf("libpq queue %s: job %q of %s has priority %d (0, 1 or 2)", where, j.Unique, j.Function, *priority)
			}
			j.Priority = uint8(*priority)
		}
		if when != nil {
			j.When = *when
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("libpq queue %s: %w", where, err)
	}
	return jobs, nil
}
