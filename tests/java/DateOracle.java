// What Java 17 reads for each (pattern, value) of dropfolder's date table.
//
// Regenerate the table (Java is needed only for this, never at test time):
//   java tests/java/DateOracle.java < tests/data/dates-java17.tsv > /tmp/dates.tsv \
//     && mv /tmp/dates.tsv tests/data/dates-java17.tsv
//
// Input and output are the same table: pattern, value, java, dropfolder, why (tab-separated;
// `\t` in a value stands for a tab). Column 3 is recomputed; the others are copied. Patterns
// without `[` go through SimpleDateFormat (lenient=false, UTC, Locale.US, two-digit years
// from 1945-06-01, that is "today" = 2025-06-01), patterns with optional sections `[...]`
// through java.time's DateTimeFormatter (STRICT, `y` read as `u`), which has them.
// A value counts as read only when the whole of it is read ("trailing text" otherwise:
// DateFormat.parse(String) would ignore it). Results are RFC 3339 UTC, with 0, 3, 6 or 9
// fraction digits as dropfolder prints them, or "refused".

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.text.ParsePosition;
import java.text.SimpleDateFormat;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.ResolverStyle;
import java.time.temporal.TemporalAccessor;
import java.util.Date;
import java.util.Locale;
import java.util.TimeZone;

public class DateOracle {
    static final TimeZone UTC = TimeZone.getTimeZone("UTC");
    static final Date CENTURY_START = Date.from(Instant.parse("1945-06-01T00:00:00Z"));

    public static void main(String[] args) throws Exception {
        TimeZone.setDefault(UTC);
        Locale.setDefault(Locale.US);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isEmpty() || line.startsWith("#")) {
                out.append(line).append('\n');
                continue;
            }
            String[] cols = line.split("\t", -1);
            String pattern = cols[0];
            String value = cols[1].replace("\\t", "\t");
            String dropfolder = cols.length > 3 ? cols[3] : "";
            String why = cols.length > 4 ? cols[4] : "";
            String java = pattern.contains("[") ? javaTime(pattern, value) : simple(pattern, value);
            out.append(pattern).append('\t').append(cols[1]).append('\t').append(java)
                .append('\t').append(dropfolder).append('\t').append(why).append('\n');
        }
        System.out.print(out);
    }

    static String simple(String pattern, String value) {
        SimpleDateFormat format;
        try {
            format = new SimpleDateFormat(pattern, Locale.US);
        } catch (IllegalArgumentException e) {
            return "bad pattern";
        }
        format.setLenient(false);
        format.setTimeZone(UTC);
        format.set2DigitYearStart(CENTURY_START);
        ParsePosition position = new ParsePosition(0);
        Date date = format.parse(value, position);
        if (date == null) {
            return "refused";
        }
        if (position.getIndex() != value.length()) {
            return "trailing text";
        }
        return rfc3339(date.toInstant());
    }

    static String javaTime(String pattern, String value) {
        DateTimeFormatter format;
        try {
            format = DateTimeFormatter.ofPattern(yearAsU(pattern), Locale.US)
                .withResolverStyle(ResolverStyle.STRICT);
        } catch (IllegalArgumentException e) {
            return "bad pattern";
        }
        try {
            TemporalAccessor t = format.parseBest(value, ZonedDateTime::from, LocalDateTime::from, LocalDate::from);
            if (t instanceof ZonedDateTime z) return rfc3339(z.toInstant());
            if (t instanceof LocalDateTime l) return rfc3339(l.toInstant(ZoneOffset.UTC));
            return rfc3339(((LocalDate) t).atStartOfDay().toInstant(ZoneOffset.UTC));
        } catch (RuntimeException e) {
            return "refused";
        }
    }

    /** `y` (year of era, which STRICT cannot resolve without an era) as `u`, outside quotes. */
    static String yearAsU(String pattern) {
        StringBuilder b = new StringBuilder();
        boolean quoted = false;
        for (char c : pattern.toCharArray()) {
            if (c == '\'') quoted = !quoted;
            b.append(!quoted && c == 'y' ? 'u' : c);
        }
        return b.toString();
    }

    static String rfc3339(Instant instant) {
        String s = instant.atOffset(ZoneOffset.UTC).toLocalDateTime().toString();
        // LocalDateTime.toString drops ":00" seconds and prints 3/6/9 fraction digits.
        int t = s.indexOf('T');
        String date = s.substring(0, t);
        String time = s.substring(t + 1);
        if (time.length() == 5) time += ":00";
        return date + "T" + time + "Z";
    }
}
