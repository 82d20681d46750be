module github.com/gearhq/gear

go 1.26
