//! What the keys and bytes in a customer's folder can do: forge or block result files, names
//! and values the pipeline cannot handle, spreadsheet formulas, forged output lines.
