"""Detection benchmark: polluted CSV files with a clean truth, ours vs clevercsv vs csv.Sniffer."""
